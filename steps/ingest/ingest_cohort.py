"""ZenML step: ingest one DICOM cohort into a versioned dataset folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import log_metadata, step

from components.config import IngestConfig
from components.data.ingest import ingest
from steps.tracking import log_dict_artifact, step_run

__all__ = ["ingest_cohort"]


@step(enable_cache=False)
def ingest_cohort(
    source: str,
    labels: str,
    out_dir: str,
    ingest_config: dict,
    cohort: str,
    experiment: str = "diffexplainer",
) -> tuple[Annotated[dict, "dataset"], Annotated[dict, "validation"]]:
    """Ingest ``source`` (folder or s3://) with ``labels`` into ``out_dir``.

    Returns:
        ``dataset``: a reference {path, hash, cohort, patients_ok, patients_quarantined, ...}
        read from ``dataset.json``; ``validation``: the Great Expectations results dict.
    """
    cfg = IngestConfig.model_validate(ingest_config)
    out = Path(out_dir)
    with step_run(experiment, f"ingest-{cohort}", tags={"stage": "ingest", "cohort": cohort}) as _:
        ingest(source, Path(labels), out, cfg, progress=lambda m: print(m, flush=True))
        info = json.loads((out / "dataset.json").read_text())
        validation_path = out / "validation" / "results.json"
        validation = json.loads(validation_path.read_text()) if validation_path.is_file() else {}
        mlflow.set_tag("dataset_hash", info["hash"])
        mlflow.log_metrics(
            {
                "patients_ok": float(info.get("patients_ok", 0)),
                "patients_quarantined": float(info.get("patients_quarantined", 0)),
            }
        )
        log_dict_artifact(info, "dataset.json")
        if validation:
            log_dict_artifact(validation, "validation/results.json")
        for name in ("patients.csv", "files.csv", "quarantine.csv"):
            if (out / name).is_file():
                mlflow.log_artifact(str(out / name))
    ref = {"path": str(out.resolve()), "cohort": cohort, **{k: info[k] for k in info if k != "config"}}
    log_metadata({"dataset_hash": info["hash"], "patients_ok": info.get("patients_ok")})
    return ref, validation
