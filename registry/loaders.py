"""Loading registered models back: MLflow resolvers for the black-box loader, DiffAE and agents."""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.artifacts import DiffAERef, TeacherRef
from components.blackbox import BlackBox, load_blackbox, state_hash
from components.drift.check import ChampionDiffAE
from components.errors import UserError
from components.models.diffae import DiffAE, save_diffae

__all__ = [
    "RESOLVERS",
    "load_classifier",
    "load_teacher",
    "registered_version",
    "load_registered",
    "load_registered_diffae",
    "fetch_registered_diffae",
    "champion_diffae",
    "find_agent_for_blackbox",
    "weights_sha256",
]


def _load_mlflow_module(uri: str) -> torch.nn.Module:
    try:
        return mlflow.pytorch.load_model(uri, map_location="cpu")
    except MlflowException as exc:
        raise UserError(f"{uri}: cannot load from the MLflow registry ({exc.error_code})") from None


RESOLVERS = {"models:/": _load_mlflow_module, "runs:/": _load_mlflow_module}


def load_classifier(spec: str, head_name: str | None = None) -> BlackBox:
    """A black box from a file, ``module:factory`` or ``models:/`` URI (MLflow resolver registered).

    Args:
        spec: see :func:`components.blackbox.load_blackbox`.
        head_name: the final Linear layer's attribute name (``--head-name``); None = the
            module's own ``head_name`` attribute, if any.
    """
    return load_blackbox(spec, resolvers=RESOLVERS, head_name=head_name)


def load_teacher(teacher: TeacherRef) -> BlackBox:
    """The black box a pipeline's ``teacher`` reference names (its ``path`` and ``head_name``)."""
    return load_classifier(teacher.path, teacher.head_name)


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the state dict (names, dtypes, shapes, bytes): detects any change of weights."""
    return state_hash(module)


def registered_version(name: str, spec: str) -> ModelVersion:
    """The model version for ``spec``: an alias (``champion``), a number, or ``latest``.

    Raises:
        UserError: no such model, alias or version.
    """
    client = MlflowClient()
    try:
        if spec == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if versions:
                return max(versions, key=lambda v: int(v.version))
        elif spec.isdigit():
            return client.get_model_version(name, spec)
        else:
            return client.get_model_version_by_alias(name, spec)
    except MlflowException:
        pass
    raise UserError(f"registered model {name!r} has no version/alias {spec!r} "
                    "(run `diffexplainer demo` or `train` first, or pass latest / a version number)")


def load_registered(name: str, spec: str) -> tuple[torch.nn.Module, ModelVersion]:
    """Load a registered torch model at ``spec`` (see :func:`registered_version`)."""
    mv = registered_version(name, spec)
    return _load_mlflow_module(f"models:/{name}/{mv.version}"), mv


def load_registered_diffae(name: str, spec: str) -> tuple[DiffAE, ModelVersion]:
    """:func:`load_registered` for a DiffAE (UserError when the version holds another model)."""
    model, mv = load_registered(name, spec)
    if not isinstance(model, DiffAE):
        raise UserError(f"models:/{name}/{mv.version} is not a DiffAE ({type(model).__name__})")
    return model, mv


def fetch_registered_diffae(name: str, spec: str, out_path: Path) -> DiffAERef:
    """Load the DiffAE ``name`` at ``spec`` and save it in the project's checkpoint format.

    Returns:
        Its reference: ``path`` = ``out_path``, ``registered_version``, the version's ``run_id``,
        ``dataset_hash`` tag (``""`` if none) and weights ``sha256``.
    """
    model, mv = load_registered_diffae(name, spec)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_diffae(model, out_path, extra={"registry": f"{name}/{mv.version}"})
    return DiffAERef(path=str(out_path), run_id=str(mv.run_id), dataset_hash=mv.tags.get("dataset_hash") or "",
                     registered_version=str(mv.version), sha256=weights_sha256(model))


def champion_diffae(name: str) -> ChampionDiffAE | None:
    """The DiffAE ``name@champion`` as a drift check needs it (weights loaded on demand), or None."""
    try:
        mv = registered_version(name, "champion")
    except UserError:
        return None
    version = str(mv.version)
    return ChampionDiffAE(version=version, dataset_hash=mv.tags.get("dataset_hash", ""), workdir=mv.tags.get("workdir"),
                          load=lambda: load_registered_diffae(name, version)[0])


def find_agent_for_blackbox(name: str, blackbox_hash: str) -> tuple[torch.nn.Module, ModelVersion]:
    """The newest registered agent distilled for the black box with ``blackbox_hash``, and its
    model version (tags ``blackbox_mode`` / ``blackbox_head``: how it reads the black box).

    Raises:
        UserError: none exists yet (run ``swap-classifier`` for that classifier first).
    """
    client = MlflowClient()
    versions: list[ModelVersion]
    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.blackbox_hash = '{blackbox_hash}'")
    except MlflowException:
        versions = []
    if not versions:
        raise UserError(f"no agent registered for classifier {blackbox_hash[:16]}...: "
                        "run `diffexplainer swap-classifier --classifier ...` first")
    mv = max(versions, key=lambda v: int(v.version))
    agent = _load_mlflow_module(f"models:/{name}/{mv.version}")
    return agent, mv
