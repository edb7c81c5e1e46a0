"""Teacher training: patient-level cross-validation with one-cycle lr (paper §2.2).

One row of ``images`` is one patient's 4-slice stack, so the fold column from ingestion
already splits by patient. For each of the first ``cfg.folds_to_train`` folds a fresh
teacher is trained on the other folds and selected on the held-out one:

- class imbalance: cross-entropy weighted by inverse class frequency of the training folds;
- augmentation: random left-right flips of the whole stack (``cfg.augment_flip``) and,
  when configured, a MONAI ``RandAffine`` (shift / zoom, the same for the 4 slices) and
  ``RandGaussianNoise`` (std drawn up to the configured value) per stack (``cfg.augment_translate_px``, ``augment_scale``,
  ``augment_noise_std``);
- lr: one-cycle (cosine warm-up over 30 %, cosine anneal to ``lr/1e4``, AdamW). The cycle's
  position is the larger of step progress and time progress, so a run stopped by the time
  budget (``cfg.max_minutes``, shared equally by the folds) still finishes annealed; the budget
  never stops a fold before ``cfg.min_epochs`` (time progress is then capped by step progress
  over those epochs, so the cycle anneals exactly at the last of them) and a fold the budget
  cut is reported with its epoch count (``budget_cut``);
- model selection: after every epoch the held-out fold is scored; the epoch with the largest
  sensitivity + specificity (Youden's J on the ROC curve) is kept; the decision threshold is
  then Youden's on the pooled out-of-fold predictions of all trained folds.

The returned model is the fold model with the best held-out sensitivity + specificity. For
two classes its selected threshold is folded into the head's bias, so ``argmax(logits)`` (the
black-box decision everything downstream uses) equals ``P(class 1) >= threshold``.
Held-out fold metrics are measured at a threshold chosen on that same fold and are therefore
optimistic; :func:`evaluate_teacher` on the external cohort is the honest estimate.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, RandAffine, RandGaussianNoise
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve
from torch import nn

from components.config import TeacherConfig
from components.errors import UserError
from components.metrics.classification import binary_metrics
from components.models.teacher import TeacherNet, build_teacher

__all__ = [
    "train_teacher",
    "evaluate_teacher",
    "predict_logits",
    "one_cycle_lr",
    "youden_threshold",
    "fold_threshold_into_head",
    "stack_augmenter",
]

ProgressFn = Callable[[float, str], None]
LogMetricsFn = Callable[[dict[str, float], int], object]  # the result is ignored


def one_cycle_lr(progress: float, max_lr: float, warmup: float = 0.3, final_div: float = 1e4) -> float:
    """One-cycle learning rate at ``progress`` in [0, 1] (cosine up, then cosine down).

    Starts at ``max_lr / 25``, peaks at ``max_lr`` after ``warmup``, ends at ``max_lr / final_div``.
    """
    p = min(max(progress, 0.0), 1.0)
    start, end = max_lr / 25.0, max_lr / final_div
    if p < warmup:
        return start + (max_lr - start) * (1 - math.cos(math.pi * p / warmup)) / 2
    q = (p - warmup) / (1 - warmup)
    return end + (max_lr - end) * (1 + math.cos(math.pi * q)) / 2


def youden_threshold(y_true: np.ndarray, prob_pos: np.ndarray) -> tuple[float, float]:
    """Threshold maximising sensitivity + specificity; returns ``(threshold, sens + spec)``.

    With a single class in ``y_true`` the threshold is 0.5 and the sum is computed there.
    """
    if len(np.unique(y_true)) < 2:
        m = binary_metrics(y_true, prob_pos, 0.5)
        return 0.5, m["sensitivity"] + m["specificity"]
    fpr, tpr, thr = roc_curve(y_true, prob_pos, drop_intermediate=False)
    j = tpr - fpr
    best = int(np.argmax(j))
    # Any threshold in (next lower score, thr[best]] gives the same decisions on these cases;
    # the midpoint keeps every case off the boundary, so the decision does not hinge on float
    # rounding once the threshold is folded into the head's bias.
    hi = float(min(thr[best], 1.0))  # roc_curve's first threshold is +inf
    lo = float(thr[best + 1]) if best + 1 < len(thr) else 0.0
    return 0.5 * (hi + lo), float(1.0 + j[best])


def fold_threshold_into_head(model: TeacherNet, threshold: float) -> None:
    """Shift the class-1 bias so that ``argmax(logits)`` means ``P(class 1) >= threshold``.

    Two-class heads only (no-op otherwise). Softmax of two logits gives
    ``P1 = sigmoid(l1 - l0)``, so subtracting ``logit(threshold)`` from ``l1`` moves the
    decision boundary from ``P1 = 0.5`` to ``P1 = threshold``. Mutates ``model``.
    """
    if model.head.out_features != 2:
        return
    t = min(max(threshold, 1e-6), 1 - 1e-6)
    with torch.no_grad():
        model.head.bias[1] -= math.log(t / (1 - t))


def _device(cfg: TeacherConfig) -> torch.device:
    """``cfg.device``: ``auto`` takes the GPU when one is visible (training runs in bf16 there)."""
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


@torch.no_grad()
def predict_logits(model: nn.Module, images: ArrayLike, batch_size: int = 64) -> np.ndarray:
    """Logits ``[N,C]`` (float32 numpy) of ``model`` on ``images [N,4,H,W] in [-1,1]``, eval mode,
    on the device the model's parameters are on."""
    x = torch.as_tensor(np.array(images, dtype=np.float32))  # a writable copy (images may be a read-only memmap)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def _softmax_pos(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True))[:, 1]


def evaluate_teacher(
    model: nn.Module, images: ArrayLike, labels: ArrayLike, threshold: float = 0.5, batch_size: int = 64
) -> dict[str, float]:
    """Metrics of a (trained) teacher on another cohort, e.g. the external one.

    Args:
        model: any classifier with ``forward(x [B,4,H,W]) -> logits [B,2]``.
        images: ``[N,4,H,W]`` float32 in [-1,1].
        labels: ``[N]`` ground truth in {0, 1}.
        threshold: on P(class 1); 0.5 = the model's argmax decision (the returned teacher
            of :func:`train_teacher` has its selected threshold folded in already).

    Returns:
        ``dict(auc, accuracy, sensitivity, specificity, f1, n, positives)``.
    """
    y = np.asarray(labels).astype(int)
    prob = _softmax_pos(predict_logits(model, images, batch_size))
    out = binary_metrics(y, prob, threshold)
    out.update(n=float(len(y)), positives=float(y.sum()))
    return out


def stack_augmenter(cfg: TeacherConfig, seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """MONAI shift / zoom / noise augmentation of a batch, or None when all are off.

    The returned function maps ``[B,4,H,W]`` in [-1,1] to a new ``[B,4,H,W]`` tensor (values
    stay in [-1,1]); each stack gets its own random draw, shared by its 4 slices. Deterministic
    for ``seed``.
    """
    transforms: list[Any] = []
    if cfg.augment_translate_px > 0 or cfg.augment_scale > 0:
        transforms.append(RandAffine(
            prob=1.0, translate_range=(cfg.augment_translate_px,) * 2, scale_range=(cfg.augment_scale,) * 2,
            padding_mode="border", mode="bilinear",
        ))
    if cfg.augment_noise_std > 0:
        transforms.append(RandGaussianNoise(prob=1.0, mean=0.0, std=cfg.augment_noise_std))
    if not transforms:
        return None
    chain = Compose(transforms).set_random_state(seed=seed)

    def apply(x: torch.Tensor) -> torch.Tensor:
        out = [torch.as_tensor(chain(xi.cpu())).as_subclass(torch.Tensor).float() for xi in x]
        return torch.stack(out).clamp_(-1.0, 1.0)

    return apply


def _time_progress(elapsed_s: float, budget_s: float, step: int, floor_total: int, floored: bool) -> float:
    """The one-cycle position the wall clock asks for: ``elapsed / budget``; with a floor of
    ``floor_total`` steps (``min_epochs``) never ahead of ``step / floor_total``, so a slow
    machine anneals over the guaranteed epochs instead of training them at the final lr."""
    t = elapsed_s / budget_s
    return min(t, step / floor_total) if floored else t


def _class_weights(y: np.ndarray, num_classes: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    w = len(y) / (num_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(w, dtype=torch.float32)


def _train_fold(
    x_tr: torch.Tensor,
    y_tr: torch.Tensor,
    x_va: torch.Tensor,
    y_va: np.ndarray,
    cfg: TeacherConfig,
    image_size: int,
    budget_s: float,
    fold: int,
    log_metrics: LogMetricsFn | None,
    step_offset: int,
) -> tuple[TeacherNet, dict[str, float], int]:
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * fold)
    torch.manual_seed(cfg.seed + 1000 * fold)
    device = _device(cfg)
    model = build_teacher(cfg, image_size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    augment = stack_augmenter(cfg, cfg.seed + 1000 * fold)
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(y_tr.numpy(), cfg.num_classes).to(device))
    steps_per_epoch = max(1, math.ceil(len(x_tr) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    min_epochs = min(cfg.min_epochs, cfg.epochs)  # above epochs: every epoch (documented on the field)
    floor_total = max(1, min_epochs * steps_per_epoch)
    start = time.monotonic()
    best: dict[str, Any] = {"score": -1.0}
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        epoch_loss = 0.0
        for i in range(0, len(x_tr), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs > 1 sample
                continue
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.augment_flip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            if augment is not None:
                xb = augment(xb)
            progress = max(step / total, _time_progress(time.monotonic() - start, budget_s, step, floor_total,
                                                        min_epochs > 0))
            for group in opt.param_groups:
                group["lr"] = one_cycle_lr(progress, cfg.lr)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss += float(loss.detach()) * len(idx)
            step += 1
        prob = _softmax_pos(predict_logits(model, x_va, 2 * cfg.batch_size))
        threshold, score = youden_threshold(y_va, prob)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "threshold": threshold,
                    "state": copy.deepcopy(model.state_dict())}
        if log_metrics is not None:
            log_metrics(
                {f"fold{fold}_train_loss": epoch_loss / len(x_tr), f"fold{fold}_val_sens_plus_spec": score},
                step_offset + epoch,
            )
        if time.monotonic() - start >= budget_s and epoch + 1 >= min_epochs:
            break
    model.load_state_dict(best["state"])
    model = model.cpu().eval()
    prob = _softmax_pos(predict_logits(model, x_va, 2 * cfg.batch_size))
    metrics = binary_metrics(y_va, prob, best["threshold"])
    metrics.update(
        threshold=best["threshold"],
        best_epoch=float(best["epoch"]),
        epochs_run=float(epoch + 1),
        budget_cut=float(epoch + 1 < cfg.epochs),
        seconds=time.monotonic() - start,
        n_train=float(len(x_tr)),
        n_val=float(len(y_va)),
    )
    return model, metrics, step_offset + epoch + 1


def train_teacher(
    images: ArrayLike,
    labels: ArrayLike,
    folds: ArrayLike,
    cfg: TeacherConfig,
    progress: ProgressFn | None = None,
    log_metrics: LogMetricsFn | None = None,
) -> tuple[TeacherNet, dict[str, Any]]:
    """Train the teacher with patient-level CV and return the selected fold model.

    Args:
        images: ``[N,4,H,W]`` float32 in [-1,1], one row per patient (H = W).
        labels: ``[N]`` class indices in ``[0, cfg.num_classes)``.
        folds: ``[N]`` fold ids from ingestion; rows with a negative id are not used.
            The first ``cfg.folds_to_train`` distinct ids (sorted) are held out in turn.
        cfg: teacher config (``arch``, ``epochs``, ``lr`` = one-cycle peak, ``max_minutes``).
        progress: optional ``progress(fraction in [0,1], message)`` callback.
        log_metrics: optional ``log_metrics(dict, step)`` per epoch (e.g. MLflow, from steps/).

    Returns:
        ``(model, metrics)``: the eval-mode teacher with the best held-out sensitivity +
        specificity (threshold folded into its head), and ``metrics`` with ``folds`` (a list
        of per-fold dicts: auc, accuracy, sensitivity, specificity, f1, threshold,
        best_epoch, ...), ``cv_mean`` (mean of each metric), ``selected_fold``,
        ``threshold`` and ``seconds``.

    Raises:
        UserError: shapes disagree, too few folds, or a training split holds one class only.
    """
    x = torch.as_tensor(np.array(images, dtype=np.float32))  # a writable copy (images may be a read-only memmap)
    y = np.asarray(labels).astype(np.int64)
    f = np.asarray(folds).astype(np.int64)
    if x.ndim != 4 or x.shape[1] != 4 or x.shape[2] != x.shape[3]:
        raise UserError(f"teacher images must be [N,4,H,H], got {list(x.shape)}")
    if not (len(x) == len(y) == len(f)):
        raise UserError(f"images ({len(x)}), labels ({len(y)}) and folds ({len(f)}) differ in length")
    fold_ids = sorted(int(v) for v in np.unique(f[f >= 0]))
    if len(fold_ids) < 2:
        raise UserError(f"teacher CV needs >= 2 folds, got {len(fold_ids)}")
    chosen = fold_ids[: cfg.folds_to_train]
    budget_s = 60.0 * cfg.max_minutes / len(chosen)
    start = time.monotonic()
    results: list[dict[str, float]] = []
    models: list[TeacherNet] = []
    oof_y: list[np.ndarray] = []
    oof_prob: list[np.ndarray] = []
    step = 0
    for k, fold in enumerate(chosen):
        tr = (f >= 0) & (f != fold)
        va = f == fold
        if len(np.unique(y[tr])) < 2:
            raise UserError(f"teacher fold {fold}: the training folds hold a single class")
        if progress is not None:
            progress(k / len(chosen), f"teacher fold {fold}: {int(tr.sum())} train / {int(va.sum())} held out")
        model, m, step = _train_fold(
            x[tr], torch.as_tensor(y[tr]), x[va], y[va], cfg, int(x.shape[-1]), budget_s, fold, log_metrics, step
        )
        m["fold"] = float(fold)
        if m["budget_cut"] and progress is not None:
            progress((k + 1) / len(chosen), f"teacher fold {fold}: the time budget ({budget_s / 60:.1f} min per fold, "
                     f"teacher.max_minutes) stopped it after {int(m['epochs_run'])} of {cfg.epochs} epochs "
                     f"(teacher.min_epochs {cfg.min_epochs})")
        results.append(m)
        models.append(model)
        oof_y.append(y[va])
        oof_prob.append(_softmax_pos(predict_logits(model, x[va], 2 * cfg.batch_size)))
    best = int(np.argmax([m["sensitivity"] + m["specificity"] for m in results]))
    model = models[best]
    # The decision threshold: Youden's J on the pooled out-of-fold predictions of every trained
    # fold (each fold's model on the patients it did not see), not on the selected fold alone:
    # one 80-patient fold moved the external positive rate between 12 % and 35 % across seeds.
    pooled_threshold, pooled_j = youden_threshold(np.concatenate(oof_y), np.concatenate(oof_prob))
    fold_threshold_into_head(model, pooled_threshold)
    keys = ("auc", "accuracy", "sensitivity", "specificity", "f1")
    cv_mean = {k: float(np.nanmean([m[k] for m in results])) for k in keys}
    if progress is not None:
        progress(1.0, f"teacher: selected fold {chosen[best]}, CV mean AUC {cv_mean['auc']:.3f}")
    return model, {
        "folds": results,
        "cv_mean": cv_mean,
        "selected_fold": chosen[best],
        "threshold": pooled_threshold,
        "threshold_rule": "youden_pooled_out_of_fold",
        "threshold_pooled_sens_plus_spec": pooled_j,
        "threshold_n_patients": int(sum(len(v) for v in oof_y)),
        "pooled_out_of_fold": binary_metrics(np.concatenate(oof_y), np.concatenate(oof_prob), pooled_threshold),
        "selected_fold_threshold": results[best]["threshold"],
        "threshold_folded_into_head": model.head.out_features == 2,
        "seconds": time.monotonic() - start,
    }
