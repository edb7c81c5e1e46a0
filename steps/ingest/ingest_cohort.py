"""ZenML step: ingest one DICOM cohort into a versioned dataset folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import log_metadata, step

from components.artifacts import DatasetRef
from components.config import IngestConfig
from components.data.ingest import ingest
from steps.logs import progress_logger
from steps.tracking import log_dict_artifact, step_run

__all__ = ["ingest_cohort"]

logger = progress_logger(__name__)


@step
def ingest_cohort(
    source: str,
    labels: str,
    out_dir: str,
    ingest_config: dict,
    cohort: str,
    experiment: str = "diffexplainer",
    source_fingerprint: str = "",
) -> tuple[Annotated[DatasetRef, "dataset"], Annotated[dict, "validation"]]:
    """Ingest ``source`` (folder or s3://) with ``labels`` into ``out_dir``.

    ``source_fingerprint`` (paths, sizes and mtimes of the source files) is the cache key: an
    unchanged source is not re-ingested, so the downstream steps are cached too.

    Returns:
        ``dataset``: the :class:`~components.artifacts.DatasetRef` read from ``dataset.json``;
        ``validation``: the Great Expectations results (a free-form dict).
    """
    cfg = IngestConfig.model_validate(ingest_config)
    out = Path(out_dir)
    t0 = time.time()
    with step_run(experiment, f"ingest-{cohort}", tags={"stage": "ingest", "cohort": cohort}) as _:
        ingest(source, Path(labels), out, cfg, progress=logger.info)
        info = json.loads((out / "dataset.json").read_text())
        validation_path = out / "validation" / "results.json"
        validation = json.loads(validation_path.read_text()) if validation_path.is_file() else {}
        mlflow.set_tag("dataset_hash", info["hash"])
        counts = info["counts"]
        mlflow.log_metrics({k: float(counts[k]) for k in ("files", "patients", "patients_ok", "patients_quarantined")})
        log_dict_artifact(info, "dataset.json")
        if validation:
            log_dict_artifact(validation, "validation/results.json")
        for name in ("patients.csv", "files.csv", "quarantine.csv"):
            if (out / name).is_file():
                mlflow.log_artifact(str(out / name))
    ref = DatasetRef.read(out, cohort, wall_s=round(time.time() - t0, 3))
    log_metadata({"dataset_hash": info["hash"], "patients_ok": counts["patients_ok"]})
    return ref, validation
