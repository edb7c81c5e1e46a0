"""DiffAE training loop: metrics, EMA, resume after a kill, time budget, DDP (gloo, 2 ranks)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from components.config import DiffAEConfig
from components.models.diffae import load_diffae
from components.training.train_diffae import CHECKPOINT_NAME, EARLY_CHECKPOINT, train_diffae

CFG = DiffAEConfig(image_size=16, base_channels=4, channel_mults=[1, 2], num_res_blocks=1,
                   attention_resolutions=[8], z_dim=8, encoder_channels=4, timesteps=50,
                   batch_size=4, lr=1e-3, warmup_steps=3, max_steps=12, checkpoint_every=4,
                   ema_decay=0.9, device="cpu", seed=3)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def images(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(size=(n, 4, 16, 16))).astype(np.float32)


class Killed(Exception):
    pass


def test_metrics_and_checkpoint(tmp_path: Path) -> None:
    lines: list[str] = []
    logged: list[int] = []
    model, m = train_diffae(images(), CFG, tmp_path, progress=lines.append,
                            log_metrics=lambda d, s: logged.append(s))
    assert m["steps"] == 12 and m["images_seen"] == 48 and len(m["loss_history"]) == 12
    assert m["img_per_s"] > 0 and np.isfinite(m["final_loss"])
    assert any("img/s" in ln and "ETA" in ln for ln in lines) and logged[-1] == 12
    blob = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert blob["step"] == 12
    # the returned model carries the EMA weights, not the raw ones
    ema = {k: v for k, v in blob["ema"].items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]), k
    assert any(not torch.equal(blob["model"][k], ema[k]) for k in ema)
    assert not model.training


def test_cpu_bf16_autocast_is_opt_in_and_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cpu_bf16_autocast runs the CPU step under bf16 autocast (recorded), the loss stays finite,
    and the weights differ from the fp32 run; off by default."""
    import components.training.train_diffae as td

    seen: list[tuple[str, bool]] = []
    real = torch.autocast

    def recording(device_type: str, dtype: torch.dtype | None = None, enabled: bool = True) -> torch.autocast:
        seen.append((device_type, enabled))
        return real(device_type, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(td.torch, "autocast", recording)
    fp32, m32 = train_diffae(images(), CFG.model_copy(update={"max_steps": 4}), tmp_path / "a")
    assert seen and all(s == ("cpu", False) for s in seen)
    seen.clear()
    bf16, m16 = train_diffae(images(), CFG.model_copy(update={"max_steps": 4, "cpu_bf16_autocast": True}),
                             tmp_path / "b")
    assert seen and all(s == ("cpu", True) for s in seen)
    assert np.isfinite(m16["final_loss"]) and m16["steps"] == 4
    w32, w16 = fp32.state_dict(), bf16.state_dict()
    assert all(v.dtype == torch.float32 for v in w16.values() if v.is_floating_point())  # weights stay fp32
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)


def test_early_checkpoint_keeps_the_ema_weights_of_that_step(tmp_path: Path) -> None:
    cfg = CFG.model_copy(update={"early_checkpoint_step": 4, "max_steps": 8})
    final, _ = train_diffae(images(), cfg, tmp_path)
    early = load_diffae(tmp_path / EARLY_CHECKPOINT)
    assert torch.load(tmp_path / EARLY_CHECKPOINT, weights_only=True)["extra"]["step"] == 4
    # the step-4 checkpoint's EMA is what a 4-step run returns; the 8-step model differs
    four, _ = train_diffae(images(), cfg.model_copy(update={"max_steps": 4}), tmp_path / "four")
    for k, v in four.state_dict().items():
        assert torch.equal(v, early.state_dict()[k]), k
    assert any(not torch.equal(v, early.state_dict()[k]) for k, v in final.state_dict().items())
    off, _ = train_diffae(images(), cfg.model_copy(update={"early_checkpoint_step": 0}), tmp_path / "off")
    assert not (tmp_path / "off" / EARLY_CHECKPOINT).exists()


def test_resume_after_kill_continues_the_same_run(tmp_path: Path) -> None:
    full_model, full = train_diffae(images(), CFG, tmp_path / "full")

    def kill_at_10(_metrics: dict, step: int) -> None:
        if step == 10:
            raise Killed  # dies after the step-8 checkpoint, 2 steps of work lost

    with pytest.raises(Killed):
        train_diffae(images(), CFG, tmp_path / "killed", log_metrics=kill_at_10)
    assert torch.load(tmp_path / "killed" / CHECKPOINT_NAME, weights_only=True)["step"] == 8
    model, resumed = train_diffae(images(), CFG, tmp_path / "killed")
    assert resumed["resumed_from_step"] == 8 and resumed["steps"] == 12
    np.testing.assert_allclose(resumed["loss_history"], full["loss_history"], rtol=1e-4, atol=1e-5)
    for (k, a), b in zip(full_model.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)
    fresh, again = train_diffae(images(), CFG, tmp_path / "killed", resume=False)
    assert again["resumed_from_step"] == 0


def test_time_budget_stops_early(tmp_path: Path) -> None:
    _, m = train_diffae(images(), CFG.model_copy(update={"max_minutes": 1e-6, "max_steps": 1000}), tmp_path)
    assert m["steps"] < 5


def test_rejects_wrong_image_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="images must be"):
        train_diffae(images()[:, :, :8, :8], CFG, tmp_path)


def _ddp_worker(rank: int, world: int, init_file: str, workdir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, m = train_diffae(images(4), CFG.model_copy(update={"max_steps": 4, "checkpoint_every": 2}),
                                Path(workdir))
        torch.save({"state": model.state_dict(), "metrics": {k: m[k] for k in ("steps", "images_seen", "world_size")}},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_ranks(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "work"), str(tmp_path)), nprocs=2)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["metrics"] == {"steps": 4, "images_seen": 16, "world_size": 2}
    for k, v in r0["state"].items():  # DDP keeps the replicas identical
        torch.testing.assert_close(v, r1["state"][k], msg=k)
    assert torch.load(tmp_path / "work" / CHECKPOINT_NAME, weights_only=True)["step"] == 4
