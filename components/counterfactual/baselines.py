"""Attribution baselines on the teacher, for the localisation comparison.

Grad-CAM and Grad-CAM++ come from MONAI (``monai.visualize``); vanilla saliency, Integrated
Gradients and occlusion from captum. Conventions (so that the methods are comparable with the
DiffExplainer map ``|cf - recon|``): captum attributions are taken in absolute value; a
Grad-CAM map is one map per stack (slices are input channels) and is repeated on every slice.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from captum.attr import IntegratedGradients, Occlusion, Saliency
from monai.visualize import GradCAM, GradCAMpp
from torch import Tensor, nn

from components.config import CounterfactualConfig
from components.counterfactual.protocols import BlackBoxLike, module_device
from components.errors import UserError

__all__ = ["BASELINES", "teacher_module", "last_spatial_layer", "attribution_maps"]

BASELINES = ("gradcam", "gradcampp", "saliency", "integrated_gradients", "occlusion")


def teacher_module(bb: BlackBoxLike) -> nn.Module:
    """The differentiable ``nn.Module`` behind a black box (``bb.module`` or ``bb`` itself)."""
    module = getattr(bb, "module", None)
    if isinstance(module, nn.Module):
        return module
    if isinstance(bb, nn.Module):
        return bb
    raise UserError("the classifier exposes no torch.nn.Module: gradient baselines need one")


def last_spatial_layer(module: nn.Module, example: Tensor) -> str:
    """Name of the last leaf module (in execution order) whose output is ``[B,C,h,w]``, h*w > 1.

    Args:
        module: the network.
        example: ``[1,4,H,W]`` input used for one forward pass.

    Returns:
        The dotted module name, as MONAI's ``target_layers`` expects.
    """
    seen: list[str] = []
    hooks = []
    for name, sub in module.named_modules():
        if name and not list(sub.children()):
            def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, Tensor) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1:
                    seen.append(name)
            hooks.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise UserError("no layer with a spatial output found for Grad-CAM; set counterfactual.gradcam_target_layer")
    return seen[-1]


def _cam(cls: type, module: nn.Module, layer: str, x: Tensor, target: int, per_call: int) -> Tensor:
    cam = cls(nn_module=module, target_layers=layer)
    if cls is GradCAMpp:
        per_call = 1  # MONAI 1.6's Grad-CAM++ broadcasts the class score wrongly for batches > 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        maps = [cam(x[i : i + per_call], class_idx=target) for i in range(0, x.shape[0], per_call)]
    out = torch.cat(maps).detach()  # [N,1,H,W], min-max normalised per image by MONAI
    return out.expand(-1, x.shape[1], -1, -1)


def attribution_maps(
    bb: BlackBoxLike,
    x: Tensor,
    target_class: int,
    cfg: CounterfactualConfig,
    methods: Sequence[str] | None = None,
    skipped: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Relevance maps of the teacher for ``target_class``.

    Args:
        bb: black box; its ``nn.Module`` (``bb.module`` or ``bb``) must be in eval mode.
        x: ``[N,4,H,W]`` in [-1,1]; not modified.
        target_class: class whose score is explained (the disease class for localisation).
        cfg: ``gradcam_target_layer``, ``ig_steps``, ``occlusion_window`` / ``_stride``,
            ``attribution_baseline``, ``batch_size``.
        methods: subset of :data:`BASELINES` (default ``cfg.baselines``).
        skipped: when given, a method that cannot run on this black box (e.g. Grad-CAM's
            forward hooks on a TorchScript module) is left out and ``skipped[method]`` says
            why; when None its error propagates.

    Returns:
        Method name -> ``[N,4,H,W]`` float32 non-negative relevance.
    """
    methods = list(cfg.baselines if methods is None else methods)
    unknown = set(methods) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines: {sorted(unknown)}")
    module = teacher_module(bb)
    x = x.detach().to(module_device(module)).float()
    per_call = max(1, cfg.batch_size // 4)
    base = float(cfg.attribution_baseline)
    out: dict[str, Tensor] = {}
    layer: str | None = None

    def compute(name: str) -> Tensor:
        nonlocal layer
        if name in ("gradcam", "gradcampp"):
            layer = layer or cfg.gradcam_target_layer or last_spatial_layer(module, x[:1])
            return _cam(GradCAM if name == "gradcam" else GradCAMpp, module, layer, x, target_class, per_call)
        if name == "saliency":
            return Saliency(module).attribute(x.clone().requires_grad_(True), target=target_class, abs=True)
        if name == "integrated_gradients":
            ig = IntegratedGradients(module)
            return torch.cat([
                ig.attribute(x[i : i + per_call], baselines=base, target=target_class,
                             n_steps=cfg.ig_steps, internal_batch_size=per_call).abs()
                for i in range(0, x.shape[0], per_call)
            ])
        k, s = cfg.occlusion_window, cfg.occlusion_stride
        return Occlusion(module).attribute(
            x, sliding_window_shapes=(1, k, k), strides=(1, s, s), baselines=base,
            target=target_class, perturbations_per_eval=per_call,
        ).abs()

    for name in methods:
        try:
            out[name] = compute(name)
        except Exception as exc:  # noqa: BLE001 - one baseline that cannot run must not sink the run
            if skipped is None:
                raise
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            skipped[name] = f"{type(exc).__name__}: {reason}"
    methods = [m for m in methods if m in out]
    return {name: out[name].detach().float().cpu().numpy() for name in methods}
