"""``diffexplainer demo``: synthesise both cohorts, run the training pipeline end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.config import ExperimentConfig

__all__ = ["run_demo", "ensure_cohort"]


def ensure_cohort(root: Path, cohort: str, cfg: ExperimentConfig, progress: Callable[[str], None]) -> Path:
    """Write the synthetic cohort unless ``root`` already holds one made with the same settings."""
    from components.data.synth import write_cohort

    n = cfg.synth.osic_patients if cohort == "osic" else cfg.synth.external_patients
    seed = cfg.synth.seed + (0 if cohort == "osic" else 1000)
    marker = root / "cohort.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        same = (info.get("config") == cfg.synth.model_dump(mode="json") and info.get("n_patients") == n
                and info.get("seed") == seed and info.get("cohort") == cohort)
        if same:
            progress(f"[demo] reusing {cohort} cohort in {root}")
            return root
    progress(f"[demo] writing synthetic {cohort} cohort ({n} patients) to {root}")
    write_cohort(root, cohort, n, seed, cfg.synth, progress=progress, overwrite=True)
    return root


def run_demo(cfg: ExperimentConfig, from_scratch: bool = False, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo on the embedded default stack and return the pipeline summary."""
    from pipelines.training import run_training

    workdir = Path(cfg.workdir)
    osic = ensure_cohort(workdir / "cohorts" / "osic", "osic", cfg, progress)
    external = ensure_cohort(workdir / "cohorts" / "external", "external", cfg, progress)
    summary = run_training(
        cfg,
        train_source=str(osic),
        train_labels=str(osic / "labels.csv"),
        external_source=str(external),
        external_labels=str(external / "labels.csv"),
    )
    summary["from_scratch"] = from_scratch
    report = workdir / "report" / "index.html"
    summary["report"] = str(report) if report.is_file() else None
    return summary
