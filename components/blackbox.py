"""The black-box classifier contract (DESIGN.md §3) and its loaders.

A black box is any classifier with ``forward(x: float32[B,4,H,W] in [-1,1]) -> logits [B,C]``.
If it also has ``features(x) -> [B,F]`` and a named final ``nn.Linear`` head with
``forward(x) == head(features(x))``, the agent is distilled in *feature* mode (paper); if not,
in *output* mode (KL on logits).

Loaders (:func:`load_blackbox`), chosen from the spec string:

- a registered prefix (``models:/name@alias``, ``models:/name/version``, ``runs:/...``):
  a caller-supplied resolver; ``components/`` never imports MLflow, so the steps layer
  registers ``{"models:/": mlflow_resolver}``. Without one, ``models:/`` is a clear error;
- an existing file: TorchScript (``torch.jit.save``) or a whole module saved with
  ``torch.save(module)`` (unpickling runs code: load only files you trust);
- ``package.module:factory``: imports the module and calls ``factory()`` (or takes the
  attribute as is when it already is an ``nn.Module``).

The head name comes from the ``head_name`` argument, else the module's ``head_name``
attribute (our teachers set ``"head"``); a named head asks for feature mode. TorchScript keeps
less than Python (checked with torch 2.13 by ``tests/components/test_blackbox.py``):

- ``torch.jit.script``: keeps ``features`` when ``forward`` calls it or it is decorated with
  ``@torch.jit.export``, and a ``head_name`` set in ``__init__`` (a class attribute is lost);
- ``torch.jit.trace``: keeps ``forward`` and the submodules. ``features`` survives only when
  decorated with ``@torch.jit.export`` (then ``__init__`` attributes such as ``head_name``
  survive too) or traced as well (``torch.jit.trace_module(m, {"forward": x, "features": x})``,
  which drops ``head_name``: the caller names the head, ``--head-name``). Without either, a
  traced classifier can only run in output mode.

:func:`check_contract` runs a dummy batch and turns each violation into a one-line
:class:`~components.errors.UserError`.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from components.errors import UserError

__all__ = [
    "BlackBox",
    "Resolver",
    "load_blackbox",
    "from_module",
    "check_contract",
    "mode_description",
    "state_hash",
    "file_hash",
]

Resolver = Callable[[str], nn.Module]
Mode = Literal["feature", "output"]
_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "http://", "https://")


class Stateful(Protocol):
    """Anything with a module's ``state_dict()`` (a module, or a wrapper that reports its module's)."""

    def state_dict(self) -> Mapping[str, Any]: ...


def state_hash(module: Stateful) -> str:
    """sha256 over a module's state (sorted names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _as_linear(head: nn.Module | None) -> nn.Linear | None:
    """An ``nn.Linear`` copy of a head (TorchScript heads are rebuilt from weight / bias)."""
    if head is None:
        return None
    if isinstance(head, nn.Linear):
        return head
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        return None
    bias = getattr(head, "bias", None)
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(bias, torch.Tensor))
    with torch.no_grad():
        lin.weight.copy_(weight)
        if isinstance(bias, torch.Tensor):
            lin.bias.copy_(bias)
    return lin


_TORCHSCRIPT_HINT = (
    " (TorchScript keeps features only when forward calls it or it is @torch.jit.export-ed; "
    "torch.jit.trace drops it otherwise)"
)


def _linear_children(module: nn.Module) -> list[str]:
    """Names of the direct children that are (TorchScript-compiled) ``nn.Linear`` layers."""
    return [
        n for n, child in module.named_children()
        if isinstance(child, nn.Linear) or getattr(child, "original_name", None) == "Linear"
    ]


@dataclass
class BlackBox:
    """A classifier behind the DESIGN.md §3 contract.

    Attributes:
        module: the classifier in eval mode; ``module(x [B,4,H,W] in [-1,1]) -> logits [B,C]``.
        mode: ``"feature"`` (has ``features`` + Linear head) or ``"output"``.
        head: the final classification layer ``Linear(F, C)`` (feature mode), else None.
        head_name: attribute name of the head on ``module`` (feature mode), else None.
        content_hash: sha256 of the loaded file, or of the module state when not from a file.
        source: the spec it was loaded from (path, ``module:factory``, URI or a description).
    """

    module: nn.Module
    mode: Mode
    head: nn.Linear | None
    head_name: str | None
    content_hash: str
    source: str
    info: dict[str, str] = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B,C]`` of ``x [B,4,H,W]``."""
        return self.module(x)

    def features(self, x: torch.Tensor) -> torch.Tensor | None:
        """Penultimate features ``[B,F]`` in feature mode; None in output mode."""
        if self.mode != "feature":
            return None
        return self.module.features(x)  # type: ignore[operator]  # duck-typed: feature mode requires it


def from_module(
    module: nn.Module,
    source: str = "<in-memory module>",
    head_name: str | None = None,
    mode: Mode | None = None,
    content_hash: str | None = None,
) -> BlackBox:
    """Wrap an ``nn.Module`` (or TorchScript module) as a :class:`BlackBox`.

    Args:
        module: the classifier; put in eval mode.
        source: where it came from (recorded for lineage).
        head_name: name of the final Linear layer; default ``module.head_name`` if present.
            Given here, it asks for feature mode (unless ``mode="output"``).
        mode: force ``"feature"`` or ``"output"``; None picks feature mode when the module has
            a callable ``features`` and a named Linear head, output mode otherwise.
        content_hash: defaults to :func:`state_hash` of the module.

    Raises:
        UserError: feature mode was asked for (``mode="feature"`` or ``head_name``) but
            ``features`` or the head is missing, or a named head does not exist / is not a
            Linear layer.
    """
    if not isinstance(module, nn.Module):
        raise UserError(f"{source}: expected a torch.nn.Module, got {type(module).__name__}")
    module.eval()
    if head_name is not None and mode is None:
        mode = "feature"
    name = head_name if head_name is not None else getattr(module, "head_name", None)
    name = name if isinstance(name, str) and name else None
    head = None
    if name is not None:
        raw = getattr(module, name, None)
        if raw is None:
            linear = ", ".join(_linear_children(module)) or "none"
            raise UserError(f"{source}: head {name!r} not found on the classifier (its Linear layers: {linear})")
        head = _as_linear(raw)
        if head is None:
            kind = getattr(raw, "original_name", type(raw).__name__)  # TorchScript keeps the class name there
            raise UserError(f"{source}: head {name!r} is a {kind}, expected nn.Linear")
    has_features = callable(getattr(module, "features", None))
    if mode == "feature" and (head is None or not has_features):
        missing = "a named Linear head (--head-name)" if head is None else "a features(x) method"
        hint = _TORCHSCRIPT_HINT if head is not None and isinstance(module, torch.jit.ScriptModule) else ""
        raise UserError(f"{source}: feature mode needs {missing}{hint}")
    chosen: Mode = mode or ("feature" if head is not None and has_features else "output")
    if chosen == "output":
        head, name = None, None
    return BlackBox(
        module=module,
        mode=chosen,
        head=head,
        head_name=name,
        content_hash=content_hash or state_hash(module),
        source=source,
    )


def _load_file(path: Path) -> tuple[nn.Module, str]:
    try:
        return torch.jit.load(str(path), map_location="cpu"), "torchscript"
    except (RuntimeError, ValueError):
        pass
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise UserError(f"{path}: not a TorchScript or torch.save file ({type(exc).__name__})") from None
    if isinstance(obj, Mapping):
        raise UserError(
            f"{path}: holds a state_dict, not a module; save the module (torch.save(model)) "
            "or give a 'package.module:factory' spec"
        )
    return obj, "torch.save"


def _load_import(spec: str) -> nn.Module:
    mod_name, attr_path = spec.split(":", 1)
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UserError(f"{spec}: cannot import {mod_name!r} ({exc})") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{spec}: {mod_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise UserError(f"{spec}: {attr_path!r} is neither a module nor a factory")
    return obj()


def load_blackbox(
    spec: str,
    resolvers: Mapping[str, Resolver] | None = None,
    head_name: str | None = None,
    mode: Mode | None = None,
) -> BlackBox:
    """Load a classifier from a path, ``module:factory`` spec or registry URI.

    Args:
        spec: ``path/to/model.pt`` (TorchScript or ``torch.save``), ``pkg.mod:factory`` or a
            URI whose prefix is a key of ``resolvers`` (e.g. ``models:/teacher@champion``).
        resolvers: prefix → function(spec) -> nn.Module; the steps layer registers MLflow here.
        head_name: final Linear layer's attribute name (overrides ``module.head_name``; asks for
            feature mode, see :func:`from_module`).
        mode: force ``"feature"`` / ``"output"``; None = automatic (see :func:`from_module`).

    Returns:
        A :class:`BlackBox` (not yet contract-checked: call :func:`check_contract`).

    Raises:
        UserError: unknown prefix without resolver, missing file, failed import, not a module.
    """
    for prefix, resolve in (resolvers or {}).items():
        if spec.startswith(prefix):
            module = resolve(spec)
            return from_module(module, spec, head_name, mode)
    if spec.startswith(_URI_PREFIXES):
        scheme = spec.split(":", 1)[0]
        raise UserError(
            f"{spec}: no resolver registered for {scheme!r} URIs "
            "(registry URIs are resolved by the pipeline layer, not components)"
        )
    path = Path(spec).expanduser()
    if path.is_file():
        module, kind = _load_file(path)
        bb = from_module(module, spec, head_name, mode, content_hash=file_hash(path))
        bb.info["format"] = kind
        return bb
    if _IMPORT_SPEC.match(spec):
        bb = from_module(_load_import(spec), spec, head_name, mode)
        bb.info["format"] = "import"
        return bb
    raise UserError(f"{spec}: no such file, and not a 'package.module:factory' spec or a registry URI")


def mode_description(mode: str, head_name: str | None = None) -> str:
    """How an agent reads its black box, in a phrase: ``features+head (head fc)`` in feature mode
    (distilled on the penultimate features, the black box's own head kept), ``logits only`` in
    output mode (distilled on the logits)."""
    if mode == "feature":
        return f"features+head (head {head_name})" if head_name else "features+head"
    return "logits only"


def _shape(t: object) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


@torch.no_grad()
def check_contract(
    bb: BlackBox,
    channels: int = 4,
    image_size: int = 32,
    num_classes: int | None = None,
    batch_size: int = 2,
    atol: float = 1e-4,
) -> dict[str, int]:
    """Run a dummy batch through the black box and reject contract violations.

    Args:
        bb: the loaded black box.
        channels: expected input channels (4 slices).
        image_size: expected H = W (from the dataset the classifier was trained on).
        num_classes: expected C, or None for any C >= 2.
        batch_size: dummy batch size B (>= 2 so BatchNorm-style layers see a batch).
        atol: tolerance of ``forward(x) == head(features(x))`` (relative to the logit scale).

    Returns:
        ``dict(num_classes=C, num_features=F or 0)``.

    Raises:
        UserError: one line saying what was expected and what came back: the model fails on
            a ``[B,channels,H,W]`` input (wrong channels or size), outputs of the wrong rank or
            shape, non-finite outputs, or features that do not feed the head.
    """
    expected = f"[{batch_size},{channels},{image_size},{image_size}]"
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, channels, image_size, image_size, generator=gen) * 2 - 1
    try:
        logits = bb(x)
    except Exception as exc:  # noqa: BLE001 - any failure on the contract input is a violation
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{bb.source}: classifier failed on input {expected} in [-1,1]: {msg}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != batch_size:
        raise UserError(f"{bb.source}: expected logits [{batch_size},C] for input {expected}, got {_shape(logits)}")
    c = int(logits.shape[1])
    if (num_classes is not None and c != num_classes) or c < 2:
        want = num_classes if num_classes is not None else ">=2"
        raise UserError(f"{bb.source}: expected logits [{batch_size},{want}], got {_shape(logits)}")
    if not torch.isfinite(logits).all():
        raise UserError(f"{bb.source}: non-finite logits (NaN/Inf) for input {expected} in [-1,1]")
    if bb.mode == "output":
        return {"num_classes": c, "num_features": 0}
    assert bb.head is not None
    feats = bb.features(x)
    f = int(bb.head.in_features)
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape != (batch_size, f):
        raise UserError(
            f"{bb.source}: features(x) must be [{batch_size},{f}] to feed head "
            f"{bb.head_name!r} (Linear {f}->{bb.head.out_features}), got {_shape(feats)}"
        )
    if not torch.isfinite(feats).all():
        raise UserError(f"{bb.source}: non-finite features (NaN/Inf) for input {expected}")
    if bb.head.out_features != c:
        raise UserError(f"{bb.source}: head {bb.head_name!r} gives {bb.head.out_features} classes, forward gives {c}")
    recomputed = bb.head(feats.float())
    scale = float(logits.abs().max()) + 1.0
    if not torch.allclose(recomputed, logits.float(), atol=atol * scale, rtol=0):
        raise UserError(
            f"{bb.source}: head {bb.head_name!r} is not the final layer: "
            "head(features(x)) differs from forward(x)"
        )
    return {"num_classes": c, "num_features": f}
