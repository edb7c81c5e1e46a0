"""The user's ``labels.csv``: ``Patient,mortality_1y`` (0/1), optional ``cohort`` and ``split``.

Row problems never stop a run; they are reported per patient:

- several rows for one patient: identical rows are merged (noted), conflicting ones
  quarantine the patient;
- a label that is not 0 or 1 (``2``, ``yes``, empty): the patient is quarantined;
- a patient with images but no row: quarantined (``no row in labels.csv``);
- a row whose patient has no images: listed in ``quarantine.csv`` as a label row.

A file that cannot be read as CSV, or lacks the two required columns, is a
:class:`~components.errors.UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.errors import UserError

__all__ = ["PATIENT_COL", "LABEL_COL", "LabelEntry", "read_labels"]

PATIENT_COL = "Patient"
LABEL_COL = "mortality_1y"


@dataclass
class LabelEntry:
    """One patient's label after checking.

    Attributes:
        label: 0 or 1, or ``None`` when unusable (``problem`` says why).
        cohort: free text ('' when absent).
        split: free text ('' when absent; see :mod:`components.data.folds`).
        problem: reason to quarantine the patient, '' when fine.
        note: non-blocking remark (e.g. merged duplicate rows).
        raw: the label text as written (``None`` for conflicting rows).
    """

    label: int | None
    cohort: str = ""
    split: str = ""
    problem: str = ""
    note: str = ""
    raw: str | None = None


def _binary(value: str) -> int | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return int(f) if f in (0.0, 1.0) else None


def read_labels(path: Path) -> dict[str, LabelEntry]:
    """Read and check ``labels.csv``.

    Args:
        path: the CSV file.

    Returns:
        ``{patient: LabelEntry}`` for every patient named in the file.

    Raises:
        UserError: unreadable file or missing ``Patient`` / ``mortality_1y`` column.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"labels {path}: file not found") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"labels {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"labels {path}: not a readable CSV ({type(exc).__name__})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in (PATIENT_COL, LABEL_COL) if c not in df.columns]
    if missing:
        raise UserError(f"labels {path}: missing column(s) {', '.join(missing)}")
    out: dict[str, LabelEntry] = {}
    for patient, rows in df.groupby(df[PATIENT_COL].str.strip(), sort=True):
        if not patient:
            continue
        cohort = rows["cohort"].str.strip().iloc[0] if "cohort" in rows else ""
        split = rows["split"].str.strip().iloc[0] if "split" in rows else ""
        raw = rows[LABEL_COL].str.strip()
        keys = {tuple(r) for r in rows.drop(columns=[PATIENT_COL]).map(str.strip).itertuples(index=False)}
        if len(keys) > 1:
            out[patient] = LabelEntry(None, cohort, split, f"{len(rows)} conflicting rows in labels.csv")
            continue
        label = _binary(raw.iloc[0])
        note = f"{len(rows)} identical rows in labels.csv merged" if len(rows) > 1 else ""
        if label is None:
            out[patient] = LabelEntry(None, cohort, split, f"label {raw.iloc[0]!r} is not 0 or 1", note, raw.iloc[0])
        else:
            out[patient] = LabelEntry(label, cohort, split, "", note, str(label))
    return out
