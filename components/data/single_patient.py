"""Read one patient's DICOM folder into the model's 4-slice stack (for ``explain``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.config import IngestConfig
from components.data.patient import process_patient
from components.data.sources import LocalSource
from components.errors import UserError

__all__ = ["read_patient_stack"]


def read_patient_stack(patient_dir: str | Path, cfg: IngestConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the ingestion reader on a single patient folder.

    Args:
        patient_dir: folder holding the patient's ``*.dcm`` files (any names).
        cfg: ingestion settings (slice levels, window, output size) of the trained models.

    Returns:
        ``(stack, row)``: float32 ``[4,H,W]`` in [-1,1] and the patient's manifest row
        (slice indices, series, HU stats; no identifiers beyond the folder name).

    Raises:
        UserError: the folder is missing, empty, or not a usable CT series (reason given).
    """
    folder = Path(patient_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: patient folder not found")
    rels = sorted(str(p.relative_to(folder.parent)) for p in folder.rglob("*") if p.is_file())
    if not rels:
        raise UserError(f"{folder}: no files")
    outcome = process_patient(LocalSource(folder.parent), folder.name, rels, None, cfg)
    if outcome.row.get("status") != "ok" or outcome.images is None:
        raise UserError(f"{folder}: not a usable CT series ({outcome.row.get('reason') or 'unreadable'})")
    return outcome.images.astype(np.float32), dict(outcome.row)
