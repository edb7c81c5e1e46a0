"""Shared paths, the pinned Kubernetes schema version and overlay rendering for tests/infra."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import yaml
from infra_kustomize import build

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "prod")
#: Schemas are pinned (kubernetes-validate ships them offline); raise together with the cluster.
K8S_VERSION = "1.32.0"
KUBECTL = shutil.which("kubectl")


def validate(obj: dict) -> None:
    """Strict schema validation (unknown fields are errors)."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@cache
def kubectl_render(directory: str) -> tuple[dict, ...]:
    """``kubectl kustomize DIR`` (offline); only call when KUBECTL is set."""
    assert KUBECTL is not None, "kubectl is not installed: skip before calling this"
    out = subprocess.run([KUBECTL, "kustomize", directory], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(directory: Path) -> list[dict]:
    """The rendered kustomization: kubectl's when available, else the pure-Python subset."""
    if KUBECTL:
        return list(kubectl_render(str(directory)))
    return build(directory)


def by_kind(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
