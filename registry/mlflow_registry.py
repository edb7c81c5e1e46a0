"""Model registration, audited promotion, rollback and lineage on the MLflow registry.

Gates are recorded as model-version tags at registration (``gate.<name>`` = passed|failed,
``gate.<name>.message``, ``gates_passed`` = true|false). Promotion is a pure function of
those recorded values: a version whose gates did not all pass is refused with the failing
gates named. Every promotion, refusal and rollback appends one audit record (who, when,
reason, decision, metrics, previous champion) to

* the model version's MLflow tags (``audit.<UTC timestamp>``),
* the ZenML model version's metadata when a ZenML model of that name exists, and
* the append-only JSONL log ``<state root>/audit.jsonl``.

The champion is MLflow's ``champion`` alias (MLflow 3's replacement for the Production stage).
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import UserError
from components.gates import GateResult

__all__ = [
    "CHAMPION",
    "AuditRecord",
    "register_model",
    "gate_tags",
    "promote",
    "rollback",
    "audit_log_path",
    "read_audit_log",
    "resolve_version",
    "current_champion",
    "record_decision",
    "DECISION_ARTIFACT",
]

DECISION_ARTIFACT = "gate_decision"

CHAMPION = "champion"


@dataclass(frozen=True)
class AuditRecord:
    """One promotion decision, as written to every audit sink."""

    model: str
    version: str
    action: str  # promote | refuse | rollback
    actor: str
    timestamp: str
    reason: str
    previous_champion: str | None
    metrics: dict[str, float]
    failing_gates: list[str]
    decision: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def audit_log_path() -> Path:
    """The append-only JSONL audit log under the project-local state root."""
    from pipelines.env import state_root

    return state_root() / "audit.jsonl"


def read_audit_log(model: str | None = None) -> list[dict[str, Any]]:
    """All audit records (optionally of one model), oldest first."""
    path = audit_log_path()
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if model is None or r["model"] == model]


def gate_tags(gates: list[GateResult]) -> dict[str, str]:
    """Model-version tags that record each gate's outcome."""
    tags: dict[str, str] = {}
    for g in gates:
        tags[f"gate.{g.name}"] = "passed" if g.passed else "failed"
        tags[f"gate.{g.name}.message"] = g.message[:5000]
    tags["gates_passed"] = "true" if gates and all(g.passed for g in gates) else "false"
    return tags


def register_model(
    model: Any,
    name: str,
    run_id: str,
    tags: dict[str, str],
    artifact_name: str = "model",
) -> str:
    """Log ``model`` (a torch module) into run ``run_id`` and register it as ``name``.

    Uses the pickle serialisation (MLflow 3.17 defaults to ``pt2``, which loads back as a
    GraphModule, DESIGN.md §5). Returns the new version number as a string.
    """
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(model, name=artifact_name, serialization_format="pickle")
    mv = mlflow.register_model(info.model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return str(mv.version)


def resolve_version(client: MlflowClient, name: str, spec: str | None) -> str:
    """Version number for ``spec`` = a version, ``@alias`` / alias name, or None (latest)."""
    try:
        if spec is None:
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise UserError(f"model {name!r} has no registered versions")
            return str(max(int(v.version) for v in versions))
        if spec.startswith("@") or not spec.isdigit():
            return str(client.get_model_version_by_alias(name, spec.lstrip("@")).version)
        client.get_model_version(name, spec)
        return spec
    except MlflowException as exc:
        raise UserError(f"model {name!r} version/alias {spec!r} not found in the registry") from exc


def current_champion(name: str, client: MlflowClient | None = None) -> str | None:
    """The version behind ``name@champion``, or None when there is no champion."""
    client = client or MlflowClient()
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _metrics_of(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    mv = client.get_model_version(name, version)
    if not mv.run_id:
        return {}
    return dict(client.get_run(mv.run_id).data.metrics)


def _write_audit(client: MlflowClient, record: AuditRecord) -> None:
    brief = json.loads(record.to_json())
    if brief.get("decision"):  # tags are size-limited: the full record is the gate_decision artifact
        brief["decision"] = {"verdict": brief["decision"]["verdict"], "failing": brief["decision"]["failing"]}
    client.set_model_version_tag(record.model, record.version, f"audit.{record.timestamp}",
                                 json.dumps(brief, sort_keys=True)[:5000])
    path = audit_log_path()
    with path.open("a") as fh:
        fh.write(record.to_json() + "\n")
    zenml_id = client.get_model_version(record.model, record.version).tags.get("zenml_model_version_id")
    if zenml_id:  # the ZenML model version of the pipeline run that registered this version
        from uuid import UUID

        from zenml import log_metadata

        log_metadata(metadata={f"audit_{record.model}_{record.timestamp}": json.loads(record.to_json())},
                     model_version_id=UUID(zenml_id))


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return os.environ.get("DIFFEXPLAINER_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def promote(name: str, version: str, reason: str, actor: str | None = None) -> AuditRecord:
    """Make ``name``/``version`` the champion if every recorded gate passed.

    Raises:
        UserError: the version is unknown, the reason is empty, or a gate failed (the refusal
            is still audited; the message names the failing gates).
    """
    if not reason.strip():
        raise UserError("promote needs a non-empty --reason for the audit record")
    client = MlflowClient()
    version = resolve_version(client, name, version)
    mv = client.get_model_version(name, version)
    failing = sorted(k.split(".", 1)[1] for k, v in mv.tags.items() if k.startswith("gate.")
                     and not k.endswith(".message") and v != "passed")
    if mv.tags.get("gates_passed") != "true" and not failing:
        failing = ["no gate results recorded"]
    previous = current_champion(name, client)
    record = AuditRecord(
        model=name,
        version=version,
        action="refuse" if failing else "promote",
        actor=_actor(actor),
        timestamp=datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
        reason=reason,
        previous_champion=previous,
        metrics=_metrics_of(client, name, version),
        failing_gates=failing,
    )
    _write_audit(client, record)
    if failing:
        details = "; ".join(
            f"{g}: {mv.tags.get(f'gate.{g}.message', 'failed')}" for g in failing if f"gate.{g}" in mv.tags
        ) or failing[0]
        raise UserError(f"refused to promote {name} v{version}: gate failed ({details})")
    client.set_registered_model_alias(name, CHAMPION, version)
    return record


def record_decision(name: str, version: str, run_id: str, record: dict[str, Any], actor: str | None = None) -> AuditRecord:
    """Record a gate decision for ``name``/``version`` in every sink.

    The full record goes to the version's run as the artifact
    ``gate_decision/<name>-v<version>.json``; the version gets the tags ``gate_decision.verdict``,
    ``gate_decision.failing`` and ``gate_decision.artifact``; an audit record with action
    ``decide`` carrying the decision is appended to the JSONL log, the version's tags and the
    ZenML model version's metadata (see :func:`_write_audit`).
    """
    client = MlflowClient()
    artifact = f"{DECISION_ARTIFACT}/{name}-v{version}.json"
    client.log_dict(run_id, record, artifact)
    client.set_model_version_tag(name, version, "gate_decision.verdict", record["verdict"])
    client.set_model_version_tag(name, version, "gate_decision.failing", ",".join(record["failing"]) or "none")
    client.set_model_version_tag(name, version, "gate_decision.artifact", f"runs:/{run_id}/{artifact}")
    audit = AuditRecord(
        model=name, version=str(version), action="decide", actor=_actor(actor),
        timestamp=datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
        reason=f"gate decision at registration: {record['verdict']}",
        previous_champion=current_champion(name, client), metrics={}, failing_gates=list(record["failing"]),
        decision=record,
    )
    _write_audit(client, audit)
    return audit


def rollback(name: str, reason: str, actor: str | None = None) -> AuditRecord:
    """Move the champion alias back to the champion before the current one (audited)."""
    if not reason.strip():
        raise UserError("rollback needs a non-empty --reason for the audit record")
    client = MlflowClient()
    current = current_champion(name, client)
    if current is None:
        raise UserError(f"model {name!r} has no champion to roll back")
    promotions = [r for r in read_audit_log(name) if r["action"] in ("promote", "rollback")]
    target = None
    for r in reversed(promotions):
        if r["version"] == current and r["action"] == "promote":
            target = r["previous_champion"]
            break
    if target is None:
        raise UserError(f"model {name!r} v{current} has no earlier champion in the audit log")
    record = AuditRecord(
        model=name,
        version=target,
        action="rollback",
        actor=_actor(actor),
        timestamp=datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
        reason=reason,
        previous_champion=current,
        metrics=_metrics_of(client, name, target),
        failing_gates=[],
    )
    _write_audit(client, record)
    client.set_registered_model_alias(name, CHAMPION, target)
    return record
