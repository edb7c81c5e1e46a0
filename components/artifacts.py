"""The typed references the pipeline steps pass to each other (ZenML artifacts).

Each is a frozen dataclass of JSON types, so ZenML stores it with its dataclass materializer
(``data.json``, content-hashed for step caching) and hands the next step the same object back,
as it does :class:`components.caches.Latents`. A reference names where a thing is (a file, a
dataset folder, an MLflow run) and the hashes that identify it; it never carries arrays or
weights.

What stays a plain ``dict``, on purpose: the gate results (``reconstruction_gate``,
``agent_gate``, ``counterfactual_gate``: :meth:`components.gates.GateResult.to_dict` plus free-form
evidence), the drift record, the Great Expectations results (``validation``) and the report's
``metrics``. They are evidence whose keys follow the measurement, written as they are to
metrics.json, MLflow and the audit log; a schema here would only restate those writers.

Where a reference is itself written out (a pipeline summary printed as JSON), :func:`as_record`
gives the dict it was before it was typed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatasetRef", "DiffAERef", "TeacherRef", "AgentRef", "RegisteredVersion", "Registration", "as_record"]


@dataclass(frozen=True)
class DatasetRef:
    """An ingested dataset folder (the ingest step's output; ``ingest --out``).

    Attributes:
        path: absolute path of the folder: ``images.npy`` ``[N,4,H,W]`` float32 in [-1,1],
            ``patients.csv``, ``dataset.json``, ``validation/``.
        cohort: ``"osic"`` (training) or ``"external"``.
        hash: ``"sha256:..."`` content hash of the arrays and manifest (``dataset.json``
            ``hash``); the ``dataset_hash`` tag of every downstream run and model version.
        patients_ok: patients kept (4 slices selected).
        patients_quarantined: patients set aside, with reasons in ``quarantine.csv``.
        validation_success: the Great Expectations verdict recorded when it was ingested; None
            when ``dataset.json`` records none.
        wall_s: seconds the ingestion took in this run (0.0 when only referenced, e.g. by
            ``swap-classifier``).
    """

    path: str
    cohort: str
    hash: str
    patients_ok: int
    patients_quarantined: int
    validation_success: bool | None = None
    wall_s: float = 0.0

    @classmethod
    def read(cls, folder: str | Path, cohort: str, wall_s: float = 0.0) -> DatasetRef:
        """The reference of an ingested folder, from its ``dataset.json`` (OSError if missing)."""
        info = json.loads((Path(folder) / "dataset.json").read_text())
        counts = info["counts"]
        return cls(path=str(Path(folder).resolve()), cohort=cohort, hash=info["hash"], patients_ok=counts["patients_ok"],
                   patients_quarantined=counts["patients_quarantined"],
                   validation_success=(info.get("validation") or {}).get("success"), wall_s=wall_s)


@dataclass(frozen=True)
class DiffAERef:
    """The diffusion autoencoder a run uses, trained in it or loaded from the registry.

    Attributes:
        path: checkpoint in the project's format (:func:`components.models.diffae.save_diffae`).
        run_id: MLflow run that trained it (for a registered one, its version's run).
        dataset_hash: hash of the training cohort it was trained on; ``""`` when the registry
            does not record one.
        holdout_fold: training-cohort fold left out of its training (-1: none).
        registered_version: the registry version it was loaded from instead of trained (drift
            action ``agent_only``, ``swap-classifier``, ``explain``; such a DiffAE is never
            registered again); None when trained in this run.
        sha256: :func:`components.blackbox.state_hash` of the weights when known (``""``
            otherwise); a changed value means changed weights.
        stage_wall_s: seconds spent on it in this run (None when reused by the drift action).
        metrics: the training run's scalar metrics (``steps``, ``final_loss``, ``img_per_s``, ...),
            empty when not trained in this run.
    """

    path: str
    run_id: str
    dataset_hash: str = ""
    holdout_fold: int = -1
    registered_version: str | None = None
    sha256: str = ""
    stage_wall_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherRef:
    """The black box that is explained: trained by the pipeline or swapped in.

    Attributes:
        path: what :func:`registry.loaders.load_classifier` reads: a ``torch.save``d module or
            TorchScript file, ``module:factory`` or a ``models:/`` URI.
        head_name: attribute name of its final Linear layer (``--head-name``); None = the
            module's own ``head_name``, if any (feature mode), else output mode.
        run_id: MLflow run that trained it; None for a swapped-in classifier.
        dataset_hash: hash of the training cohort it was trained on (``""`` if not ours).
        cv_mean: mean patient-level cross-validation metrics (``auc``, ``f1``, ...).
        external: metrics of the selected model on the external cohort.
        seconds: training time in seconds (None when not trained in this run).
    """

    path: str
    head_name: str | None = None
    run_id: str | None = None
    dataset_hash: str = ""
    cv_mean: dict[str, float] = field(default_factory=dict)
    external: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None


@dataclass(frozen=True)
class AgentRef:
    """The distilled agent of one black box (its gate is the separate ``agent_gate`` dict).

    Attributes:
        path: agent checkpoint (:func:`components.models.agent.save_agent`).
        run_id: MLflow run that distilled it.
        objective: the saved agent's distillation objective (``L1`` / ``MSE`` / ``KL``).
        threshold: decision threshold on the agent's P(class 1).
        blackbox_hash: content hash of the black box it was distilled for (how ``explain
            --classifier`` finds it in the registry).
        blackbox_mode: ``"feature"`` (aligned to the penultimate features, the head kept) or
            ``"output"`` (logits only).
        blackbox_head: the head's attribute name in feature mode, ``""`` in output mode.
        alignment: objective -> agreement metrics with the black box on the external cohort.
        wall_s: seconds the step took.
    """

    path: str
    run_id: str
    objective: str
    threshold: float
    blackbox_hash: str
    blackbox_mode: str
    blackbox_head: str
    alignment: dict[str, dict[str, float]]
    wall_s: float


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version registered by a run.

    Attributes:
        version: MLflow model version number (a string, as MLflow gives it).
        promoted: set to the ``champion`` alias by this run.
        message: why (promoted, auto-promotion disabled, or the refusal's reason).
        verdict: the gate decision, ``"pass"`` or ``"fail"``.
        failing: ``gate.metric`` names that failed or were not measured.
    """

    version: str
    promoted: bool
    message: str
    verdict: str
    failing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Registration:
    """What the registration step did: registered model name -> its new version."""

    models: dict[str, RegisteredVersion] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{model name: {version, promoted, message, verdict, failing}}``, as summaries print it."""
        return {name: asdict(entry) for name, entry in self.models.items()}


def as_record(artifact: Any) -> Any:
    """The JSON-ready form of a step output: a typed reference as a plain dict (a
    :class:`Registration` keyed by model name), anything else unchanged."""
    if isinstance(artifact, Registration):
        return artifact.to_dict()
    if is_dataclass(artifact) and not isinstance(artifact, type):
        return asdict(artifact)
    return artifact
