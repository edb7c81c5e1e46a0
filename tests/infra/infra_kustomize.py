"""A small, pure-Python subset of ``kustomize build`` for the manifests in infra/k8s.

Supports what our kustomizations use: ``resources`` (files and directories), ``namespace``,
``labels`` (metadata only), ``replicas``, ``images`` and strategic-merge ``patches`` (maps
merge, lists of named maps merge by ``name``, other lists replace). Tests compare it with
``kubectl kustomize`` where kubectl exists, so it cannot drift unnoticed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(base: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``base`` (maps recursively, named lists by ``name``)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            out[k] = strategic_merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        items = copy.deepcopy(base)
        index = {x["name"]: i for i, x in enumerate(items)}
        for item in patch:
            if item["name"] in index:
                items[index[item["name"]]] = strategic_merge(items[index[item["name"]]], item)
            else:
                items.append(copy.deepcopy(item))
        return items
    return copy.deepcopy(patch)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    path = POD_TEMPLATE_PATHS.get(obj["kind"])
    if not path:
        return []
    node: Any = obj
    for p in path:
        node = node.get(p, {})
    return node.get("containers", []) + node.get("initContainers", [])


def build(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory``."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = (directory / res).resolve()
        objs += build(path) if path.is_dir() else load_docs(path)
    for patch_ref in kust.get("patches", []):
        for patch in load_docs(directory / patch_ref["path"]):
            matches = [i for i, o in enumerate(objs) if _key(o) == _key(patch)]
            assert len(matches) == 1, f"patch target {_key(patch)} not found exactly once"
            objs[matches[0]] = strategic_merge(objs[matches[0]], patch)
    for rep in kust.get("replicas", []):
        for o in objs:
            if o["metadata"]["name"] == rep["name"] and o["kind"] in {"Deployment", "StatefulSet"}:
                o["spec"]["replicas"] = rep["count"]
    for img in kust.get("images", []):
        for o in objs:
            for c in _containers(o):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    for entry in kust.get("labels", []):
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(entry["pairs"])
    ns = kust.get("namespace")
    if ns:
        for o in objs:
            if o["kind"] == "Namespace":
                o["metadata"]["name"] = ns
            elif o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = ns
            if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}:
                for s in o.get("subjects", []):
                    if s.get("kind") == "ServiceAccount":
                        s["namespace"] = ns
    return objs
