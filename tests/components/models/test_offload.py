"""OffloadedDiffAE: the same numbers as the model, CPU tensors out, the source's cache keys."""

from __future__ import annotations

import pytest
import torch

from components.blackbox import state_hash
from components.config import DiffAEConfig
from components.counterfactual.decoding import decode_stacks, encode_stacks
from components.counterfactual.protocols import DiffAELike, module_device
from components.models.diffae import build_diffae
from components.models.offload import OffloadedDiffAE

TINY = DiffAEConfig(image_size=16, base_channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_resolutions=[],
                    z_dim=8, encoder_channels=4, timesteps=20, inversion_fixed_point_iters=1, device="cpu", seed=0)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_diffae(TINY).eval()
    with torch.no_grad():  # zero-initialised output layers would make every decode ignore z
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def test_same_outputs_as_the_model_on_the_cpu(model) -> None:
    # "cpu:0" is another device string for the CPU: the wrapper's copy-and-move path runs as on a GPU
    off = OffloadedDiffAE(model, "cpu:0")
    x = torch.rand(2, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        want = model.reconstruct_stack(x, 3)
        q = model.encode_stack(x)
    got = off.reconstruct_stack(x, 3)
    for w, g in zip(want, got, strict=True):
        assert g.device.type == "cpu" and g.dtype == torch.float32
        torch.testing.assert_close(g, w)
    torch.testing.assert_close(off.encode_stack(x), q)
    flat, z = x.reshape(8, 1, 16, 16), q.reshape(8, TINY.z_dim)
    with torch.no_grad():
        x_t = model.invert(flat, z, 3)
        torch.testing.assert_close(off.invert(flat, z, 3), x_t)
        torch.testing.assert_close(off.render(x_t, z, 3, depth=0.5), model.render(x_t, z, 3, depth=0.5))


def test_callers_see_a_cpu_model_with_the_source_keys(model) -> None:
    off = OffloadedDiffAE(model, "cpu:0")
    assert isinstance(off, DiffAELike)
    assert module_device(off) == torch.device("cpu") and off.device == torch.device("cpu")
    assert state_hash(off) == state_hash(model)
    assert off.z_dim == model.z_dim and off.config is model.config
    assert off.source is model and all(p.device.type == "cpu" for p in model.parameters())
    # the counterfactual code runs through it unchanged
    x = torch.rand(3, 4, 16, 16) * 2 - 1
    lat, ref = encode_stacks(off, x, 2, batch_size=8), encode_stacks(model, x, 2, batch_size=8)
    torch.testing.assert_close(lat.recon, ref.recon)
    torch.testing.assert_close(decode_stacks(off, lat.x_T, lat.q * 1.1, 2, 8), decode_stacks(model, ref.x_T, ref.q * 1.1, 2, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_copy_is_there_and_outputs_come_back_to_the_cpu(model) -> None:
    off = OffloadedDiffAE(model, "cuda")
    assert all(p.device.type == "cuda" for p in off._model.parameters())
    assert all(p.device.type == "cpu" for p in model.parameters())
    x = torch.rand(2, 4, 16, 16) * 2 - 1
    recon, x_t, q = off.reconstruct_stack(x, 3)
    assert recon.device.type == x_t.device.type == q.device.type == "cpu"
    with torch.no_grad():
        want = model.reconstruct_stack(x, 3)[0]
    torch.testing.assert_close(recon, want, atol=1e-3, rtol=1e-3)  # TF32 / kernel order on the GPU
