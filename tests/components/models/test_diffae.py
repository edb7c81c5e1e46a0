"""DiffAE model: shapes, slice order, z conditioning, inversion round trip, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import DiffAEConfig
from components.models.diffae import DiffAE, build_diffae, load_diffae, save_diffae
from components.models.encoder import SemanticEncoder
from components.models.unet import ConditionalUNet
from components.training.train_diffae import train_diffae

TINY = DiffAEConfig(image_size=16, base_channels=8, channel_mults=[1, 2], num_res_blocks=1,
                    attention_resolutions=[8], z_dim=16, encoder_channels=4, timesteps=50,
                    batch_size=8, lr=2e-3, warmup_steps=5, max_steps=100, checkpoint_every=1000,
                    ema_decay=0.9, augment_flip=False, device="cpu", seed=0)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """``[n,4,size,size]`` smooth phantoms in [-1, 1]: a bright disc on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.empty((n, 4, size, size), dtype=np.float32)
    for i in range(n):
        for s in range(4):
            cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
            out[i, s] = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 0.6, -0.8)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[DiffAE, np.ndarray]:
    images = blobs(4)
    model, _ = train_diffae(images, TINY, tmp_path_factory.mktemp("dae"))
    return model, images


@pytest.mark.parametrize(("size", "mults", "attn"), [(16, [1, 2], [8]), (32, [1, 2, 2], []), (32, [1, 2], [16])])
def test_unet_and_encoder_shapes(size: int, mults: list[int], attn: list[int]) -> None:
    torch.manual_seed(0)
    unet = ConditionalUNet(size, 8, mults, 1, attn, z_dim=12)
    enc = SemanticEncoder(size, 4, z_dim=12)
    x = torch.randn(3, 1, size, size)
    z = enc(x)
    assert z.shape == (3, 12)
    assert unet(x, torch.tensor([0, 5, 99]), z).shape == (3, 1, size, size)


def test_stack_api_shapes_and_slice_order() -> None:
    torch.manual_seed(0)
    model = build_diffae(TINY.model_copy(update={"timesteps": 20})).eval()
    x = torch.from_numpy(blobs(2))
    q = model.encode_stack(x)
    assert q.shape == (2, 4 * 16)
    per_slice = torch.cat([model.encode(x[:, s:s + 1]) for s in range(4)], dim=1)
    assert torch.allclose(q, per_slice, atol=1e-5)
    recon, x_T, q2 = model.reconstruct_stack(x, steps=3)
    assert recon.shape == x.shape and x_T.shape == x.shape and torch.allclose(q2, q, atol=1e-5)
    assert recon.min() >= -1 and recon.max() <= 1


def test_render_clamps() -> None:
    model = build_diffae(TINY.model_copy(update={"timesteps": 20})).eval()
    out = model.render(torch.full((2, 1, 16, 16), 50.0), torch.zeros(2, 16), steps=2)
    assert out.max() <= 1.0 and out.min() >= -1.0


def test_inversion_round_trip_on_trained_model(trained: tuple[DiffAE, np.ndarray]) -> None:
    model, images = trained
    x = torch.from_numpy(images)
    flat = x.reshape(-1, 1, 16, 16)
    z = model.encode(flat)

    def round_trip(steps: int, iters: int) -> float:
        return (model.render(model.invert(flat, z, steps, iters), z, steps) - flat).abs().mean().item()

    # Measured on this 100-step model: plain inversion 0.13 (a far-from-converged ε is not
    # smooth along the path), 1 fixed-point iteration 0.02, 3 iterations 0.001 (mean |error|
    # on [-1, 1] images).
    exact = round_trip(50, 3)
    assert exact < 0.01, exact
    assert round_trip(50, 1) < round_trip(50, 0)
    # the default path (config: 1 iteration) via reconstruct_stack
    recon, x_T, _ = model.reconstruct_stack(x, steps=50)
    assert (recon - x).abs().mean().item() < 0.06
    # a random x_T with the right z decodes far worse: inversion carries the image detail
    rand = model.render(torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)), z, 50)
    assert exact < 0.05 * (rand - flat).abs().mean().item()
    assert 0.5 < x_T.std().item() < 1.5  # x_T looks like unit noise


def test_z_conditioning_changes_output(trained: tuple[DiffAE, np.ndarray]) -> None:
    model, images = trained
    flat = torch.from_numpy(images).reshape(-1, 1, 16, 16)
    z = model.encode(flat)
    x_T = model.invert(flat, z, 10)
    own = model.render(x_T, z, 10)
    swapped = model.render(x_T, z.roll(1, dims=0), 10)
    assert (own - swapped).abs().mean().item() > 0.02
    t = torch.full((16,), 25)
    with torch.no_grad():
        assert not torch.allclose(model.unet(x_T, t, z), model.unet(x_T, t, torch.zeros_like(z)), atol=1e-4)


def test_save_load_round_trip(trained: tuple[DiffAE, np.ndarray], tmp_path: Path) -> None:
    model, images = trained
    path = save_diffae(model, tmp_path / "m.pt", {"psnr": 30.0})
    blob = torch.load(path, weights_only=True)  # plain dict: no classes pickled
    assert blob["config"]["image_size"] == 16
    loaded = load_diffae(path)
    assert loaded.extra == {"psnr": 30.0}
    x = torch.from_numpy(images[:1])
    assert torch.allclose(loaded.encode_stack(x), model.encode_stack(x))
    assert torch.equal(loaded.reconstruct_stack(x, 3)[0], model.reconstruct_stack(x, 3)[0])


def test_load_rejects_foreign_file(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a DiffAE checkpoint"):
        load_diffae(tmp_path / "x.pt")
