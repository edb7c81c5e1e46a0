"""The typed step artifacts: ZenML's dataclass materializer round trip, fields, and the dicts they replace."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from components.artifacts import (
    AgentRef,
    DatasetRef,
    DiffAERef,
    RegisteredVersion,
    Registration,
    TeacherRef,
    as_record,
)

DATASET = DatasetRef(path="/w/datasets/osic", cohort="osic", hash="sha256:abc", patients_ok=28,
                     patients_quarantined=2, validation_success=True, wall_s=3.25)
DIFFAE = DiffAERef(path="/w/models/diffae.pt", run_id="r1", dataset_hash="sha256:abc", holdout_fold=4,
                   stage_wall_s=61.5, metrics={"steps": 400.0, "final_loss": 0.125})
TEACHER = TeacherRef(path="/w/models/teacher.pt", run_id="r2", dataset_hash="sha256:abc",
                     cv_mean={"auc": 0.9, "f1": math.nan}, external={"auc": 0.85, "n": 12.0}, seconds=40.0)
AGENT = AgentRef(path="/w/models/agent.pt", run_id="r3", objective="L1", threshold=0.4375, blackbox_hash="sha256:bb",
                 blackbox_mode="feature", blackbox_head="head",
                 alignment={"L1": {"auc": 0.95, "kl": 0.01, "n": 12.0}, "KL": {"auc": math.nan}}, wall_s=12.0)
REGISTRATION = Registration(models={
    "diffexplainer-agent": RegisteredVersion(version="3", promoted=False, message="refused: gate failed",
                                             verdict="fail", failing=["agent.auc"]),
    "diffexplainer-diffae": RegisteredVersion(version="2", promoted=True, message="promoted to champion",
                                              verdict="pass"),
})
ALL: list[Any] = [DATASET, DIFFAE, TEACHER, AGENT, REGISTRATION, TeacherRef(path="pkg.mod:factory")]


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (JSON keeps it as NaN)."""
    return json.dumps(as_record(a), sort_keys=True) == json.dumps(as_record(b), sort_keys=True)


@pytest.mark.parametrize("artifact", ALL, ids=lambda a: type(a).__name__)
def test_round_trip_through_zenml_dataclass_materializer(artifact: Any, tmp_path: Path) -> None:
    from zenml.materializers.dataclass_materializer import DataclassMaterializer

    kind = type(artifact)
    assert DataclassMaterializer.can_save_type(kind) and DataclassMaterializer.can_load_type(kind)
    materializer = DataclassMaterializer(uri=str(tmp_path))
    materializer.save(artifact)
    back = materializer.load(kind)
    assert type(back) is kind and _same(back, artifact)
    if "NaN" not in json.dumps(as_record(artifact)):  # NaN != NaN
        assert back == artifact
    # the cache key of a step that takes it: equal content, equal hash; any change, another one
    again = DataclassMaterializer(uri=str(tmp_path)).compute_content_hash(back)
    assert again == materializer.compute_content_hash(artifact)


def test_numbers_keep_their_type_and_nan_survives(tmp_path: Path) -> None:
    """ints stay ints and NaN stays NaN through the JSON file, so metrics.json is written as before."""
    from zenml.materializers.dataclass_materializer import DataclassMaterializer

    materializer = DataclassMaterializer(uri=str(tmp_path))
    materializer.save(AGENT)
    back = materializer.load(AgentRef)
    assert math.isnan(back.alignment["KL"]["auc"]) and back.alignment["L1"] == AGENT.alignment["L1"]
    materializer.save(DATASET)
    ds = materializer.load(DatasetRef)
    assert type(ds.patients_ok) is int and ds.patients_ok == 28 and ds.validation_success is True


def test_fields_are_typed_and_frozen() -> None:
    for artifact in ALL:
        for f in dataclasses.fields(artifact):
            assert "Any" not in str(f.type), (type(artifact).__name__, f.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(artifact, dataclasses.fields(artifact)[0].name, "elsewhere")


def test_records_are_the_dicts_the_steps_passed_before() -> None:
    """Summaries printed as JSON keep their keys: a dataset reference, a registration by model name."""
    assert as_record(DATASET) == {"path": "/w/datasets/osic", "cohort": "osic", "hash": "sha256:abc",
                                  "patients_ok": 28, "patients_quarantined": 2, "validation_success": True,
                                  "wall_s": 3.25}
    assert as_record(REGISTRATION) == {
        "diffexplainer-agent": {"version": "3", "promoted": False, "message": "refused: gate failed",
                                "verdict": "fail", "failing": ["agent.auc"]},
        "diffexplainer-diffae": {"version": "2", "promoted": True, "message": "promoted to champion",
                                 "verdict": "pass", "failing": []},
    }
    assert as_record({"passed": True}) == {"passed": True}  # free-form gate dicts pass through


def test_dataset_ref_reads_an_ingested_folder(tmp_path: Path) -> None:
    info = {"hash": "sha256:f00", "counts": {"patients_ok": 5, "patients_quarantined": 1, "files": 30},
            "validation": {"success": False, "blocking_failed": []}}
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    ref = DatasetRef.read(tmp_path, "external", wall_s=1.5)
    assert ref == DatasetRef(path=str(tmp_path.resolve()), cohort="external", hash="sha256:f00", patients_ok=5,
                             patients_quarantined=1, validation_success=False, wall_s=1.5)
    del info["validation"]
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    assert DatasetRef.read(tmp_path, "osic").validation_success is None
    with pytest.raises(OSError):
        DatasetRef.read(tmp_path / "missing", "osic")
