"""Teacher training on tiny data: CV, selection, threshold folding, time budget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from components.config import TeacherConfig
from components.errors import UserError
from components.metrics.classification import binary_metrics
from components.training.train_teacher import (
    evaluate_teacher,
    fold_threshold_into_head,
    one_cycle_lr,
    predict_logits,
    stack_augmenter,
    train_teacher,
    youden_threshold,
)

SIZE = 16


def _tiny_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives carry a bright square in every slice; 30 % prevalence."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.3).astype(int)
    y[:2] = [0, 1]
    x = rng.normal(-0.5, 0.1, size=(n, 4, SIZE, SIZE)).astype(np.float32)
    x[y == 1, :, 4:10, 4:10] += 1.0
    return np.clip(x, -1, 1), y


def _cfg(**kw) -> TeacherConfig:
    base = dict(arch="densenet-small", init_features=4, growth_rate=4, block_config=[2, 2],
                folds_to_train=2, epochs=4, batch_size=8, lr=3e-3, max_minutes=1.0)
    return TeacherConfig(**{**base, **kw})


def test_train_teacher_cv_and_selection() -> None:
    torch.set_num_threads(2)
    x, y = _tiny_cohort(48, 0)
    folds = np.arange(48) % 4
    seen: list[float] = []
    logged: list[int] = []
    model, m = train_teacher(x, y, folds, _cfg(), progress=lambda f, _: seen.append(f),
                             log_metrics=lambda d, step: logged.append(step))
    assert len(m["folds"]) == 2 and m["selected_fold"] in (0, 1)
    for fm in m["folds"]:
        assert {"auc", "accuracy", "sensitivity", "specificity", "f1", "threshold", "best_epoch"} <= fm.keys()
        assert fm["n_val"] == 12 and fm["n_train"] == 36
    assert set(m["cv_mean"]) == {"auc", "accuracy", "sensitivity", "specificity", "f1"}
    assert seen[0] == 0.0 and seen[-1] == 1.0 and logged == list(range(len(logged)))
    assert not model.training
    x_ext, y_ext = _tiny_cohort(40, 1)
    ext = evaluate_teacher(model, x_ext, y_ext)
    assert ext["auc"] > 0.8 and ext["n"] == 40
    # the decision threshold comes from the pooled out-of-fold predictions of both folds, and
    # it is what the returned model's argmax decides at
    assert m["threshold_rule"] == "youden_pooled_out_of_fold" and m["threshold_n_patients"] == 24
    assert 0.0 < m["threshold"] < 1.0 and 0.0 <= m["threshold_pooled_sens_plus_spec"] <= 2.0
    va = folds == m["selected_fold"]
    with torch.no_grad():
        logits = model(torch.as_tensor(x[va])).double()
    t = m["threshold"]
    raw_p1 = torch.sigmoid(logits[:, 1] - logits[:, 0] + math.log(t / (1 - t))).numpy()  # undo the folded bias
    again = evaluate_teacher(model, x[va], y[va])
    expect = binary_metrics(y[va], raw_p1, t)
    assert again["sensitivity"] == pytest.approx(expect["sensitivity"])
    assert again["specificity"] == pytest.approx(expect["specificity"])


def test_time_budget_and_errors() -> None:
    x, y = _tiny_cohort(24, 2)
    folds = np.arange(24) % 3
    _, m = train_teacher(x, y, folds, _cfg(arch="resnet", resnet_layers=[1, 1, 1, 1],
                                           resnet_channels=[4, 4, 8, 8], folds_to_train=1,
                                           epochs=50, max_minutes=1e-4))
    assert m["folds"][0]["epochs_run"] == 1.0 and m["folds"][0]["budget_cut"] == 1.0
    with pytest.raises(UserError, match="single class"):
        train_teacher(x, np.zeros(24, int), folds, _cfg(folds_to_train=1))
    with pytest.raises(UserError, match=">= 2 folds"):
        train_teacher(x, y, np.zeros(24, int), _cfg())
    with pytest.raises(UserError, match=r"\[N,4,H,H\]"):
        train_teacher(x[:, :3], y, folds, _cfg())


def test_min_epochs_survive_an_exhausted_budget_and_still_anneal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded machine slows training; with teacher.min_epochs the budget cannot cut a fold below
    them, the lr schedule anneals over them, and the cut is reported."""
    import components.training.train_teacher as tt

    x, y = _tiny_cohort(24, 2)
    folds = np.arange(24) % 3
    lrs: list[float] = []
    real = tt.one_cycle_lr

    def recording(progress: float, lr: float) -> float:
        lrs.append(progress)
        return real(progress, lr)

    monkeypatch.setattr(tt, "one_cycle_lr", recording)
    msgs: list[str] = []
    _, m = train_teacher(x, y, folds, _cfg(folds_to_train=1, epochs=50, max_minutes=1e-4, min_epochs=3),
                         progress=lambda _, msg: msgs.append(msg))
    fold = m["folds"][0]
    assert fold["epochs_run"] == 3.0 and fold["budget_cut"] == 1.0
    steps = len(lrs)  # 16 training rows, batch 8: 2 steps per epoch
    assert steps == 6 and lrs == pytest.approx([k / 6 for k in range(6)])  # annealed over the 3 epochs
    assert any("stopped it after 3 of 50 epochs" in msg for msg in msgs)
    # without the time pressure the floor changes nothing: every epoch runs, no cut reported
    _, full = train_teacher(x, y, folds, _cfg(folds_to_train=1, epochs=2, min_epochs=3))  # above epochs: all
    assert full["folds"][0]["epochs_run"] == 2.0 and full["folds"][0]["budget_cut"] == 0.0


def test_min_epochs_equal_to_epochs_makes_the_teacher_independent_of_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With min_epochs = epochs the lr schedule is step-based only: two runs whose clocks run at
    different speeds (machine load) give the same weights; with the budget alone they do not."""
    import types

    import components.training.train_teacher as tt

    x, y = _tiny_cohort(24, 2)
    folds = np.arange(24) % 3

    def weights(tick_s: float, **kw: Any) -> list[torch.Tensor]:
        clock = iter(range(10**6))
        monkeypatch.setattr(tt, "time", types.SimpleNamespace(monotonic=lambda: next(clock) * tick_s))
        model, _ = train_teacher(x, y, folds, _cfg(folds_to_train=1, epochs=3, max_minutes=1.0, **kw))
        return [p.detach().clone() for p in model.parameters()]

    fast, slow = weights(0.001, min_epochs=3), weights(5.0, min_epochs=3)
    assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    fast0, slow0 = weights(0.001), weights(5.0)
    assert not all(torch.equal(a, b) for a, b in zip(fast0, slow0, strict=True))


def test_one_cycle_youden_and_threshold_folding() -> None:
    assert one_cycle_lr(0.0, 1.0) == pytest.approx(1 / 25)
    assert one_cycle_lr(0.3, 1.0) == pytest.approx(1.0)
    assert one_cycle_lr(1.0, 1.0) == pytest.approx(1e-4)
    assert one_cycle_lr(2.0, 1.0) == one_cycle_lr(1.0, 1.0)
    t, score = youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.8]))
    # perfect separation between 0.3 and 0.35: the midpoint, no case on the boundary
    assert t == pytest.approx(0.325) and score == pytest.approx(2.0)
    t, score = youden_threshold(np.array([0, 1, 0, 1, 1]), np.array([0.2, 0.4, 0.5, 0.6, 0.9]))
    assert 0.5 < t < 0.6 and score == pytest.approx(1 + 2 / 3)  # ties no case; same decisions as 0.6

    from components.models.teacher import build_teacher

    model = build_teacher(_cfg(), SIZE).eval()
    x, _ = _tiny_cohort(20, 3)
    logits = predict_logits(model, x)
    p1 = torch.softmax(torch.as_tensor(logits), 1)[:, 1].numpy()
    thr = float(np.median(p1))
    fold_threshold_into_head(model, thr)
    decided = predict_logits(model, x).argmax(1)
    clear = np.abs(p1 - thr) > 1e-5  # float32 ties at the boundary are not decidable
    assert clear.sum() >= 18
    assert np.array_equal(decided[clear], (p1[clear] >= thr).astype(int))


def test_stack_augmenter_monai_shift_zoom_noise() -> None:
    assert stack_augmenter(_cfg(), seed=0) is None  # all off by default
    x = torch.full((3, 4, SIZE, SIZE), -1.0)
    x[:, :, 6:10, 6:10] = 1.0
    aug = stack_augmenter(_cfg(augment_translate_px=2.0, augment_scale=0.1), seed=0)
    again = stack_augmenter(_cfg(augment_translate_px=2.0, augment_scale=0.1), seed=0)
    noise = stack_augmenter(_cfg(augment_noise_std=0.05), seed=1)
    assert aug is not None and again is not None and noise is not None
    out = aug(x)
    assert type(out) is torch.Tensor
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert not torch.equal(out, x)
    # one affine draw per stack, shared by its 4 slices
    assert torch.allclose(out[:, 0], out[:, 3])
    # different stacks get different draws; the same seed repeats them
    assert not torch.allclose(out[0], out[1])
    assert torch.equal(again(x), out)
    noisy = noise(torch.zeros(2, 4, SIZE, SIZE))
    assert type(noisy) is torch.Tensor  # not a MONAI MetaTensor
    assert 0.0 < float(noisy.std()) < 0.05  # MONAI draws the std uniformly in [0, 0.05]


def test_train_teacher_with_augmentation_learns() -> None:
    torch.set_num_threads(2)
    x, y = _tiny_cohort(48, seed=3)
    folds = np.arange(48) % 2
    model, m = train_teacher(x, y, folds, _cfg(epochs=6, augment_translate_px=1.0, augment_scale=0.05))
    xe, ye = _tiny_cohort(40, seed=4)
    assert evaluate_teacher(model, xe, ye)["auc"] > 0.9
