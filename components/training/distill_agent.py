"""Agent distillation: fit the linear agent to the black box on DiffAE latents (paper §3.3).

Objectives (paper Table 1): ``"L1"`` / ``"MSE"`` between the agent's ``Linear(2048→F)``
output and the teacher's penultimate features (feature mode), and ``"KL"`` between the two
models' class distributions. In output mode (a black box without features / head) the agent
regresses the black box's logits with L1 / MSE, or matches its distribution with KL.

How the fit is done (DESIGN.md §5a: the fitting mattered more than the form):

1. Latents are standardised with the training rows' mean / std (``cfg.normalize_latents``);
   the statistics are stored in the agent.
2. ``Linear(2048→F)`` is initialised with the closed-form, cross-validated ridge regression
   (scikit-learn ``RidgeCV``, efficient leave-one-out over ``cfg.ridge_alphas``) from the
   standardised latents to the regression target (teacher features, or logits in output mode).
3. It is then fine-tuned with the selected objective (Adam, ``cfg.lr``, batch
   ``cfg.batch_size``, up to ``cfg.epochs`` epochs); in feature mode the head is the teacher's
   own layer, frozen.
4. Early stopping: ``cfg.val_fraction`` of the original rows (with their augmented views)
   are held out; after the ridge start (epoch 0) and after every epoch the held-out objective
   is measured (stopping after ``cfg.patience`` epochs without improvement); the best epoch
   count is kept, and steps 1–3 are rerun on all rows for that many epochs. With
   ``val_fraction = 0`` all ``cfg.epochs`` epochs are run.

Augmented pairs (e.g. latents of left-right flipped slices with the teacher's outputs on the
flipped stack) come in as ``q_aug`` / ``targets_aug`` and are added to the training rows. By
convention ``q_aug[j]`` is a view of ``q_train[j % N]`` when ``len(q_aug)`` is a multiple of N,
which keeps a held-out row's views out of training; otherwise all augmented rows train.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from sklearn.linear_model import RidgeCV
from torch import nn

from components.config import AgentConfig
from components.errors import UserError
from components.metrics.classification import binary_metrics, f1_threshold, prob_kl
from components.models.agent import Agent

__all__ = ["distill_agent", "alignment_report", "agent_scores", "decision_threshold", "objective_loss", "Objective"]

Objective = Literal["L1", "MSE", "KL"]
ProgressFn = Callable[[float, str], None]
LogMetricsFn = Callable[[dict[str, float], int], object]  # the result is ignored


@overload
def _tensor(a: None) -> None: ...


@overload
def _tensor(a: ArrayLike | torch.Tensor) -> torch.Tensor: ...


def _tensor(a: ArrayLike | torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return None
    return torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a), dtype=torch.float32)


def objective_loss(
    agent: Agent, q: torch.Tensor, target_features: torch.Tensor | None, target_logits: torch.Tensor, objective: Objective
) -> torch.Tensor:
    """Distillation loss of ``agent`` on a batch (scalar tensor, differentiable).

    Args:
        agent: the agent.
        q: ``[B,D]`` latents.
        target_features: ``[B,F]`` teacher features (feature mode) or None (output mode).
        target_logits: ``[B,C]`` black-box logits.
        objective: ``"L1"`` / ``"MSE"`` on features (logits in output mode) or ``"KL"``
            = KL(black box ‖ agent) on class distributions, batch mean.
    """
    if objective == "KL":
        return F.kl_div(
            F.log_softmax(agent(q), dim=1), F.log_softmax(target_logits, dim=1), log_target=True, reduction="batchmean"
        )
    target = target_features if agent.mode == "feature" and target_features is not None else target_logits
    pred = agent.features(q)
    return F.l1_loss(pred, target) if objective == "L1" else F.mse_loss(pred, target)


def _ridge_init(agent: Agent, q: torch.Tensor, target: torch.Tensor, alphas: list[float]) -> float:
    u = agent.normalize_latents(q).double().numpy()
    ridge = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), fit_intercept=True)
    ridge.fit(u, target.double().numpy())
    with torch.no_grad():
        agent.linear.weight.copy_(torch.as_tensor(np.atleast_2d(ridge.coef_), dtype=torch.float32))
        agent.linear.bias.copy_(torch.as_tensor(np.atleast_1d(ridge.intercept_), dtype=torch.float32))
    return float(ridge.alpha_)


@torch.no_grad()
def _eval_loss(agent: Agent, q: torch.Tensor, feats: torch.Tensor | None, logits: torch.Tensor, objective: Objective) -> float:
    agent.eval()
    return float(objective_loss(agent, q, feats, logits, objective))


def _fit(
    q: torch.Tensor,
    feats: torch.Tensor | None,
    logits: torch.Tensor,
    head: nn.Linear | None,
    cfg: AgentConfig,
    objective: Objective,
    epochs: int,
    val: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None,
    on_epoch: Callable[[int, float, float | None], None] | None,
) -> tuple[Agent, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    feature_mode = head is not None and feats is not None
    c = int(logits.shape[1])
    agent = Agent(
        latent_dim=int(q.shape[1]),
        feature_dim=int(head.in_features) if feature_mode and head is not None else c,
        num_classes=c,
        mode="feature" if feature_mode else "output",
        normalize=cfg.normalize_latents,
        head=head if feature_mode else None,
    )
    if cfg.normalize_latents:
        agent.set_normalization(q.mean(0), q.std(0))
    info: dict[str, Any] = {"ridge_alpha": None}
    if cfg.ridge_init:
        target = feats if feature_mode and feats is not None else logits
        info["ridge_alpha"] = _ridge_init(agent, q, target, cfg.ridge_alphas)
    info["start_state"] = copy.deepcopy(agent.state_dict())
    params = [p for p in agent.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    val_curve = [_eval_loss(agent, *val, objective)] if val is not None else []
    best_state, best_epoch = copy.deepcopy(agent.state_dict()), 0
    train_loss = float("nan")
    for epoch in range(1, epochs + 1):
        agent.train()
        perm = torch.randperm(len(q), generator=gen)
        total = 0.0
        for i in range(0, len(q), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = objective_loss(agent, q[idx], feats[idx] if feats is not None else None, logits[idx], objective)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / len(q)
        if val is not None:
            val_curve.append(_eval_loss(agent, *val, objective))
            if val_curve[-1] < min(val_curve[:-1]):
                best_state, best_epoch = copy.deepcopy(agent.state_dict()), epoch
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_curve[-1] if val_curve else None)
        if val is not None and epoch - best_epoch >= cfg.patience:
            break
    if val is not None:
        agent.load_state_dict(best_state)
    info.update(train_loss=train_loss, val_curve=val_curve, best_epoch=best_epoch if val is not None else epochs)
    return agent.eval(), info


def _split_rows(n: int, n_aug: int, cfg: AgentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train originals, held-out originals, training augmented rows)."""
    n_val = int(round(n * cfg.val_fraction))
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), np.arange(0), np.arange(n_aug)
    perm = np.random.default_rng(cfg.seed).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    aug = np.arange(n_aug)
    if n_aug and n_aug % n == 0:
        aug = aug[~np.isin(aug % n, val)]
    return train, val, aug


def distill_agent(
    q_train: ArrayLike | torch.Tensor,
    blackbox_targets: Mapping[str, Any],
    head: nn.Linear | None,
    cfg: AgentConfig,
    objective: Objective | None = None,
    progress: ProgressFn | None = None,
    q_aug: ArrayLike | torch.Tensor | None = None,
    targets_aug: Mapping[str, Any] | None = None,
    log_metrics: LogMetricsFn | None = None,
) -> tuple[Agent, dict[str, Any]]:
    """Distil a linear agent from black-box outputs on latents.

    Args:
        q_train: ``[N,D]`` latents (D = 2048 = 4 × 512), one row per stack.
        blackbox_targets: ``features`` ``[N,F]`` (or None / absent: output mode) and
            ``logits`` ``[N,C]`` of the black box on the same stacks.
        head: the black box's final ``nn.Linear(F, C)`` (feature mode; frozen in the agent),
            or None for output mode.
        cfg: agent config (epochs, batch_size, lr, ridge_init, ridge_alphas, val_fraction).
        objective: ``"L1"`` | ``"MSE"`` | ``"KL"``; default ``cfg.objective``.
        progress: optional ``progress(fraction in [0,1], message)``.
        q_aug: optional ``[M,D]`` extra latents (e.g. of flipped slices), see module docs.
        targets_aug: black-box ``features`` / ``logits`` for ``q_aug`` (same keys).
        log_metrics: optional ``log_metrics(dict, step)`` per epoch of the final fit.

    Returns:
        ``(agent, metrics)``: the eval-mode :class:`Agent` and a dict with ``objective``,
        ``mode``, ``ridge_alpha``, ``epochs`` (selected), ``val_curve`` (held-out objective
        after 0..epochs epochs), ``val_ridge`` / ``val_best`` (held-out alignment at epoch 0 and
        at the selected epoch), ``train_loss``, ``n_train``, ``n_aug``, ``seconds``.

    Raises:
        UserError: inconsistent shapes, missing logits, or an unknown objective.
    """
    start = time.monotonic()
    objective = objective or cfg.objective
    if objective not in ("L1", "MSE", "KL"):
        raise UserError(f"agent objective must be L1, MSE or KL, got {objective!r}")
    q = _tensor(q_train)
    feats = _tensor(blackbox_targets.get("features"))
    logits = _tensor(blackbox_targets.get("logits"))
    if q is None or q.ndim != 2 or logits is None or logits.ndim != 2 or len(logits) != len(q):
        raise UserError("distill_agent needs q_train [N,D] and blackbox_targets['logits'] [N,C] with equal N")
    if head is None:
        feats = None
    elif feats is not None and (feats.ndim != 2 or len(feats) != len(q) or feats.shape[1] != head.in_features):
        raise UserError(f"teacher features must be [N,{head.in_features}], got {list(feats.shape)}")
    qa = _tensor(q_aug)
    if qa is not None:
        ta = targets_aug or {}
        fa, la = _tensor(ta.get("features")), _tensor(ta.get("logits"))
        if la is None or len(la) != len(qa) or qa.shape[1] != q.shape[1] or (feats is not None and (fa is None or len(fa) != len(qa))):
            raise UserError("q_aug needs targets_aug with logits (and features in feature mode) for every row")
    else:
        qa, fa, la = q[:0], (feats[:0] if feats is not None else None), logits[:0]
    n, n_aug = len(q), len(qa)

    def rows(orig: np.ndarray, aug: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        o, a = torch.as_tensor(orig, dtype=torch.long), torch.as_tensor(aug, dtype=torch.long)
        f = torch.cat([feats[o], fa[a]]) if feats is not None and fa is not None else None
        return torch.cat([q[o], qa[a]]), f, torch.cat([logits[o], la[a]])

    metrics: dict[str, Any] = {"objective": objective, "n_train": n, "n_aug": n_aug}
    epochs = cfg.epochs
    train_idx, val_idx, aug_idx = _split_rows(n, n_aug, cfg)
    if len(val_idx):
        if progress is not None:
            progress(0.0, f"agent ({objective}): selecting epochs on {len(val_idx)} held-out rows")
        val = rows(val_idx, np.arange(0))
        probe, info = _fit(*rows(train_idx, aug_idx), head, cfg, objective, cfg.epochs, val, None)
        epochs = int(info["best_epoch"])
        metrics["val_curve"] = info["val_curve"]
        metrics["val_best"] = alignment_report(probe, val[0], val[2])
        ridge = copy.deepcopy(probe)
        ridge.load_state_dict(info["start_state"])
        metrics["val_ridge"] = alignment_report(ridge, val[0], val[2])
        if cfg.threshold_rule in ("validation_f1", "crossfit_f1"):  # crossfit_f1: replaced by distill_suite
            metrics["decision_threshold"] = decision_threshold(probe, val[0], val[2])
    if progress is not None:
        progress(0.5, f"agent ({objective}): final fit, ridge start + {epochs} epochs on {n + n_aug} rows")

    def on_epoch(epoch: int, train_loss: float, _val: float | None) -> None:
        if log_metrics is not None:
            log_metrics({f"agent_{objective}_train_loss": train_loss}, epoch)

    agent, info = _fit(*rows(np.arange(n), np.arange(n_aug)), head, cfg, objective, epochs, None, on_epoch)
    metrics.setdefault("decision_threshold", 0.5)
    metrics.update(
        mode=agent.mode,
        ridge_alpha=info["ridge_alpha"],
        epochs=epochs,
        train_loss=info["train_loss"],
        seconds=time.monotonic() - start,
    )
    if progress is not None:
        progress(1.0, f"agent ({objective}): done in {metrics['seconds']:.1f} s")
    return agent, metrics


@torch.no_grad()
def agent_scores(agent: nn.Module, q: ArrayLike | torch.Tensor, positive_class: int = 1) -> np.ndarray:
    """The agent's ``P(positive_class)`` ``[M]`` in [0, 1] for latents ``q [M,D]``."""
    was_training = agent.training
    agent.eval()
    prob = torch.softmax(agent(_tensor(q)).float(), dim=1)[:, positive_class].numpy()
    agent.train(was_training)
    return prob


def decision_threshold(
    agent: nn.Module, q_val: ArrayLike | torch.Tensor, teacher_logits_val: ArrayLike | torch.Tensor, positive_class: int = 1
) -> float:
    """The agent's decision threshold, fixed from held-out training rows before any external case.

    The F1-maximising threshold on the agent's ``P(positive_class)`` against the black box's
    decisions on rows the agent was not fitted on (the epoch-selection rows). A ridge-fitted
    agent's margins shrink toward the majority class out of sample; the threshold corrects that.
    """
    y = (_tensor(teacher_logits_val).argmax(1) == positive_class).numpy().astype(int)
    return f1_threshold(y, agent_scores(agent, q_val, positive_class))


@torch.no_grad()
def alignment_report(
    agent: nn.Module, q_ext: ArrayLike | torch.Tensor, teacher_logits_ext: ArrayLike | torch.Tensor, positive_class: int = 1
) -> dict[str, float]:
    """How faithfully the agent mimics the black box on a cohort (e.g. the external one).

    Args:
        agent: maps ``q [M,D]`` to logits ``[M,C]``.
        q_ext: ``[M,D]`` latents.
        teacher_logits_ext: ``[M,C]`` black-box logits on the same stacks.
        positive_class: class whose probability is the score (1 = disease).

    Returns:
        ``dict(auc, accuracy, sensitivity, specificity, f1, kl, n, teacher_positives)``:
        the teacher's predicted class (argmax == positive_class) is the ground truth and the
        agent's ``P(positive_class)`` the score (threshold 0.5 for the threshold metrics);
        ``kl`` = mean KL(teacher ‖ agent) of predicted class distributions.
    """
    was_training = agent.training
    agent.eval()
    q = _tensor(q_ext)
    t_logits = _tensor(teacher_logits_ext)
    a_prob = torch.softmax(agent(q).float(), dim=1).numpy()
    agent.train(was_training)
    t_prob = torch.softmax(t_logits, dim=1).numpy()
    y = (t_prob.argmax(1) == positive_class).astype(int)
    out = binary_metrics(y, a_prob[:, positive_class], 0.5)
    out.update(kl=prob_kl(t_prob, a_prob), n=float(len(y)), teacher_positives=float(y.sum()))
    return out
