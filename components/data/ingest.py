"""Ingest an OSIC-layout DICOM cohort into a validated, content-hashed dataset folder.

Layout read: ``SOURCE/train/<Patient>/*.dcm`` (or ``SOURCE/<Patient>/*`` when there is no
``train/``), optional ``SOURCE/masks/<Patient>.npz`` (synthetic ground truth). Every other
file is listed as ``skipped`` (auxiliary).

Layout written to ``OUT`` (all readable without this code):

- ``files.csv``: every source file exactly once: ``path`` (relative to the source),
  ``patient``, ``status`` (used | skipped | quarantined), ``reason``, PHI-free metadata.
- ``patients.csv``: one row per patient folder: status ok | quarantined, reason, label,
  cohort, split, fold, selected slice indices, series digest and why it was chosen, HU
  medians (air, lung), intercept correction, n_slices, spacings.
- ``quarantine.csv``: ``kind`` (patient | file | label), patient, path, reason.
- ``images.npy``: float32 ``[N, 4, H, W]`` in [-1, 1], rows = the ``ok`` rows of
  patients.csv in order. ``lung_masks.npy``: uint8 ``[N, 4, H, W]``.
- ``masks.npy`` / ``distractor.npy`` / ``marker.npy`` (only when the source has ``masks/``):
  float32 ``[N, 4, H, W]`` in [0, 1] (disease, ground-glass distractor, planted shortcut
  marker), NaN rows for patients without that mask.
- ``dataset.json``: counts, config, source, array shapes, validation summary, ``hash``.
- ``validation/results.json`` and HTML Data Docs under ``validation/gx/``.

The dataset hash is sha256 over the images' shape and bytes, the labels (int64) and the
patient order. No output carries PS3.15 Annex E attributes (names, dates, institutions,
UIDs); PatientID appears only as the folder name it already is.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import json
import multiprocessing as mp
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from components.config import IngestConfig
from components.data.dicom_header import FileRecord
from components.data.folds import assign_folds
from components.data.labels import LabelEntry, read_labels
from components.data.patient import PatientOutcome, process_patient
from components.data.sources import Source, open_source
from components.data.validation import check_blocking_names, prepare_validation, run_validation
from components.errors import UserError

__all__ = [
    "FORMAT",
    "OUTPUT_NAMES",
    "POOL_MIN_FILES",
    "IngestResult",
    "discover",
    "dataset_hash",
    "ingest",
    "shutdown_pool",
]

FORMAT = "diffexplainer-dataset/1"
OUTPUT_NAMES = (
    "files.csv", "patients.csv", "quarantine.csv", "images.npy", "lung_masks.npy",
    "masks.npy", "distractor.npy", "marker.npy", "dataset.json", "validation",
)
# Below this many patient files the patients are read in this process: starting worker
# processes (a forkserver that imports numpy / scipy / pydicom, then the workers) and the
# Great Expectations set-up competing with them cost more than reading this many files
# (~0.25 ms each) on 2 busy cores.
POOL_MIN_FILES = 4000

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def _context() -> Any:
    """Start method of the worker processes.

    ``fork`` when this process runs no other thread (forking is then safe, and the
    workers start at once with the reader already imported); otherwise ``forkserver``:
    workers fork from a clean server (no threads of the caller) that has imported the
    reader (pydicom, numpy, scipy) once.
    """
    if threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["components.data.patient"])
    return ctx


# glibc mallopt parameters (malloc.h) and the values the workers use
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_WORKER_MMAP_THRESHOLD = 64 << 20
_WORKER_TRIM_THRESHOLD = 256 << 20


def _worker_init() -> None:
    """Let a worker reuse freed memory instead of returning it to the OS at once.

    Each patient allocates and frees the same large arrays (slice stacks, label images,
    full-resolution HU); with glibc's defaults most of them are fresh pages from the OS
    every time (page faults, zeroing: about a fifth of a worker's CPU time). Here blocks
    under 64 MiB come from the heap, which is trimmed only when more than 256 MiB of it
    is free, so a worker's memory stays bounded by its largest patient. No-op without
    glibc.
    """
    try:
        libc = ctypes.CDLL(None)  # this process's C library
        libc.mallopt(_M_MMAP_THRESHOLD, _WORKER_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _WORKER_TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _pool(workers: int) -> ProcessPoolExecutor:
    """The module's patient worker pool, started on first use and kept for later ingests.

    Call it before starting any thread (see :func:`_context`).
    """
    global _POOL, _POOL_WORKERS
    if _POOL is not None and (_POOL_WORKERS != workers or getattr(_POOL, "_broken", False)):
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None
    if _POOL is None:
        _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_worker_init)
        _POOL_WORKERS = workers
    return _POOL


def shutdown_pool() -> None:
    """Stop the ingestion worker processes (started again by the next large ingest)."""
    global _POOL, _POOL_WORKERS
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
    _POOL, _POOL_WORKERS = None, 0


atexit.register(shutdown_pool)


@dataclass
class IngestResult:
    """What :func:`ingest` produced.

    Attributes:
        out: the dataset folder.
        dataset_hash: ``sha256:<hex>`` content hash.
        n_ok: patients in the dataset.
        n_quarantined: patients quarantined.
        n_files: files listed in ``files.csv``.
        validation: the Great Expectations results dict (see
            :func:`components.data.validation.validate_tables`), JSON-serialisable.
        summary: the contents of ``dataset.json``.
    """

    out: Path
    dataset_hash: str
    n_ok: int
    n_quarantined: int
    n_files: int
    validation: dict[str, Any]
    summary: dict[str, Any]


@dataclass
class Layout:
    """Files of a source grouped by role."""

    patients: dict[str, list[str]]
    masks: dict[str, str]
    other: dict[str, str]  # path -> why it is skipped


def discover(files: list[str]) -> Layout:
    """Group source files into patient folders, ground-truth masks and auxiliary files.

    Args:
        files: POSIX paths relative to the source.
    """
    root = "train/" if any(f.startswith("train/") for f in files) else ""
    patients: dict[str, list[str]] = {}
    masks: dict[str, str] = {}
    other: dict[str, str] = {}
    for f in files:
        parts = f.split("/")
        if len(parts) == 2 and parts[0] == "masks" and parts[1].endswith(".npz"):
            masks[parts[1][: -len(".npz")]] = f
        elif not f.startswith(root):
            other[f] = f"auxiliary file outside {root or 'patient folders'}"
        elif len(parts) - root.count("/") < 2:
            other[f] = "not inside a patient folder"
        else:
            patients.setdefault(parts[root.count("/")], []).append(f)
    return Layout(patients, masks, other)


def dataset_hash(images: np.ndarray, labels: np.ndarray, patients: list[str]) -> str:
    """``sha256:<hex>`` over image shape + bytes, int64 labels and the patient order."""
    h = hashlib.sha256()
    h.update(repr(tuple(images.shape)).encode())
    h.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    h.update("\n".join(patients).encode())
    return f"sha256:{h.hexdigest()}"


PatientArgs = tuple[Source, str, list[str], str | None, IngestConfig]


def _patient_args(source: Source, layout: Layout, cfg: IngestConfig) -> list[PatientArgs]:
    """:func:`process_patient` arguments per patient folder, in patient order."""
    return [(source, p, layout.patients[p], layout.masks.get(p), cfg) for p in sorted(layout.patients)]


def _start_patients(args: list[PatientArgs], cfg: IngestConfig) -> list[Future[PatientOutcome]] | None:
    """Submit the patients to the worker pool, or ``None`` when they are read in this process.

    Small jobs stay in this process (see :data:`POOL_MIN_FILES`). The pool's workers are
    started here, before the caller starts its Great Expectations thread.
    """
    n_files = sum(len(a[2]) for a in args)
    if cfg.workers <= 1 or len(args) <= 1 or n_files < POOL_MIN_FILES:
        return None
    pool = _pool(cfg.workers)
    # largest patients first, so no worker is left with a big one at the end
    big_first = sorted(args, key=lambda a: -len(a[2]))
    return [pool.submit(process_patient, *a) for a in big_first]


def _finish_patients(
    args: list[PatientArgs],
    futures: list[Future[PatientOutcome]] | None,
    progress: Callable[[str], None] | None,
) -> list[PatientOutcome]:
    """Every patient's outcome in patient order: from ``futures``, or read here when ``None``."""
    names = [a[1] for a in args]
    results: dict[str, PatientOutcome] = {}

    def report(o: PatientOutcome) -> None:
        results[o.row["patient"]] = o
        if progress is not None:
            r = o.row
            tail = f" ({r['reason']})" if r["reason"] else ""
            progress(f"[{len(results)}/{len(names)}] {r['patient']}: {r['status']}{tail}")

    if futures is None:
        for a in args:
            report(process_patient(*a))
    else:
        try:
            for fut in as_completed(futures):
                report(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return [results[p] for p in names]


def _apply_labels(outcomes: list[PatientOutcome], labels: dict[str, LabelEntry]) -> None:
    for o in outcomes:
        row = o.row
        entry = labels.get(row["patient"])
        problem = "no row in labels.csv" if entry is None else entry.problem
        if entry is not None:
            row.update(label=entry.label, cohort=entry.cohort, split=entry.split)
            if entry.note:
                row["note"] = "; ".join(x for x in (row["note"], entry.note) if x)
        row["label_raw"] = None if entry is None else entry.raw
        if problem:
            if row["status"] == "ok":
                row["status"], row["reason"] = "quarantined", problem
                o.images = o.lung_masks = o.masks = o.distractor = o.marker = None
                for rec in o.files:
                    if rec.status == "used":
                        rec.mark("quarantined", f"patient quarantined: {problem}")
            else:
                row["reason"] = f"{row['reason']}; {problem}"


def _file_rows(outcomes: list[PatientOutcome], layout: Layout) -> pd.DataFrame:
    rows = [rec.table_row() for o in outcomes for rec in o.files]
    status = {o.row["patient"]: o.row for o in outcomes}
    for patient, path in sorted(layout.masks.items()):
        row = status.get(patient)
        if row is not None and row["status"] == "ok" and row["has_mask"]:
            rows.append(FileRecord(path, patient, "used", "ground-truth mask").table_row())
        else:
            why = "no images for this patient" if row is None else (
                "patient quarantined" if row["status"] != "ok" else "mask not usable")
            rows.append(FileRecord(path, patient, "skipped", f"ground-truth mask: {why}").table_row())
    for path, why in sorted(layout.other.items()):
        rows.append(FileRecord(path, "", "skipped", why).table_row())
    df = pd.DataFrame(rows)
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def _quarantine_table(patients: pd.DataFrame, files: pd.DataFrame, unknown: list[str]) -> pd.DataFrame:
    q = patients[patients.status == "quarantined"]
    parts = [
        pd.DataFrame({"kind": "patient", "patient": q.patient, "path": "", "reason": q.reason}),
        pd.DataFrame({"kind": "file", "patient": files.patient[files.status == "quarantined"],
                      "path": files.path[files.status == "quarantined"],
                      "reason": files.reason[files.status == "quarantined"]}),
        pd.DataFrame({"kind": "label", "patient": unknown, "path": "labels.csv",
                      "reason": "patient in labels.csv has no images in the source"}),
    ]
    return pd.concat(parts, ignore_index=True)


def _validation_tables(files: pd.DataFrame, patients: pd.DataFrame, outcomes: list[PatientOutcome]) -> dict[str, pd.DataFrame]:
    has_pos = {rec.path: rec.ipp is not None for o in outcomes for rec in o.files}
    f = files[files.modality.notna()].copy()
    f["has_position"] = f.path.map(has_pos).fillna(False).astype(bool)
    cols = ["patient", "n_slices", "label_raw", "slice_spacing_mm", "hu_air", "hu_lung"]
    p = patients[cols].rename(columns={"hu_air": "air_hu", "hu_lung": "lung_hu"})
    return {"files": f.reset_index(drop=True), "patients": p.reset_index(drop=True)}


def _clear(out: Path) -> None:
    for name in OUTPUT_NAMES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _stack(arrays: list[np.ndarray | None], shape: tuple[int, ...], dtype: type) -> np.ndarray:
    out: np.ndarray = np.full((len(arrays), *shape), np.nan if dtype is np.float32 else 0, dtype=dtype)
    for i, a in enumerate(arrays):
        if a is not None:
            out[i] = a
    return out


def ingest(
    source: str,
    labels_csv: Path,
    out: Path,
    cfg: IngestConfig,
    progress: Callable[[str], None] | None = None,
) -> IngestResult:
    """Ingest, validate and write a dataset (see the module docstring for the outputs).

    Args:
        source: local folder or ``s3://bucket/prefix`` in OSIC layout.
        labels_csv: ``Patient,mortality_1y[,cohort][,split]``.
        out: output folder (created; earlier ingest outputs in it are replaced).
        cfg: ingestion settings.
        progress: called with one line per finished patient (no identifiers beyond the
            pseudonymous patient ID).

    Returns:
        :class:`IngestResult`.

    Raises:
        UserError: empty or unreachable source, unreadable labels, a blocking expectation
            failed, or no patient usable (reports are written before raising).
    """
    check_blocking_names(cfg.blocking_expectations)
    src = open_source(source, cfg.s3_endpoint_url)
    labels = read_labels(Path(labels_csv))
    files = src.list_files()
    if not files:
        raise UserError(f"source {src.description} holds no files")
    layout = discover(files)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)

    # Start the patient workers first (they may fork: no thread of ours may run yet), then
    # import Great Expectations and register the suites (seconds, once per process) in a
    # thread while the patients are read.
    args = _patient_args(src, layout, cfg)
    futures = _start_patients(args, cfg)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-prepare") as gx_thread:
            prepared = gx_thread.submit(prepare_validation, cfg, out / "validation")
            outcomes = _finish_patients(args, futures, progress)
            prep = prepared.result()
    except BaseException:
        for fut in futures or []:
            fut.cancel()
        raise
    _apply_labels(outcomes, labels)
    ok = [o for o in outcomes if o.row["status"] == "ok"]
    folds, k = assign_folds(
        [o.row["patient"] for o in ok], [int(o.row["label"]) for o in ok], cfg.n_folds, cfg.seed,
        [o.row["split"] for o in ok],
    )
    for o, f in zip(ok, folds):
        o.row["fold"] = int(f)

    patients = pd.DataFrame([o.row for o in outcomes], columns=[*outcomes[0].row] if outcomes else ["patient"])
    if patients.empty:
        patients = pd.DataFrame(columns=["patient", "status", "reason", "label_raw", "n_slices",
                                         "slice_spacing_mm", "hu_air", "hu_lung"])
    files_df = _file_rows(outcomes, layout)
    unknown = sorted(set(labels) - set(layout.patients))
    quarantine = _quarantine_table(patients, files_df, unknown)
    files_df.to_csv(out / "files.csv", index=False)
    patients.drop(columns=["label_raw"], errors="ignore").to_csv(out / "patients.csv", index=False)
    quarantine.to_csv(out / "quarantine.csv", index=False)

    validation = run_validation(prep, _validation_tables(files_df, patients, outcomes))
    (out / "validation" / "results.json").write_text(json.dumps(validation, indent=1, default=str))

    if not ok:
        reasons = Counter(str(r).split(" (")[0] for r in patients.get("reason", []))
        top = "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3)) or "no patient folders"
        raise UserError(f"ingest: no usable patient in {src.description} ({top}); see {out / 'quarantine.csv'}")
    if validation["blocking_failed"]:
        raise UserError(
            f"ingest: blocking expectation(s) failed: {', '.join(validation['blocking_failed'])}; "
            f"see {out / 'validation' / 'results.json'}"
        )

    size = cfg.image_size
    images = np.stack(cast("list[np.ndarray]", [o.images for o in ok])).astype(np.float32)  # set when ok
    lung = np.stack(cast("list[np.ndarray]", [o.lung_masks for o in ok])).astype(np.uint8)
    ids = [o.row["patient"] for o in ok]
    y = np.array([o.row["label"] for o in ok], dtype=np.int64)
    np.save(out / "images.npy", images)
    np.save(out / "lung_masks.npy", lung)
    have_masks = any(o.masks is not None for o in ok)
    if have_masks:
        np.save(out / "masks.npy", _stack([o.masks for o in ok], (4, size, size), np.float32))
        np.save(out / "distractor.npy", _stack([o.distractor for o in ok], (4, size, size), np.float32))
        np.save(out / "marker.npy", _stack([o.marker for o in ok], (4, size, size), np.float32))
    digest = dataset_hash(images, y, ids)
    status_counts = files_df.status.value_counts()
    summary: dict[str, Any] = {
        "format": FORMAT,
        "hash": digest,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": src.description,
        "labels_csv": {"name": Path(labels_csv).name, "sha256": hashlib.sha256(Path(labels_csv).read_bytes()).hexdigest()},
        "counts": {
            "files": int(len(files_df)),
            "files_by_status": {s: int(status_counts.get(s, 0)) for s in ("used", "skipped", "quarantined")},
            "patients": int(len(patients)),
            "patients_ok": len(ok),
            "patients_quarantined": int(len(patients) - len(ok)),
            "label_rows_unknown_patient": len(unknown),
            "labels": {str(c): int((y == c).sum()) for c in (0, 1)},
            "with_masks": int(sum(o.masks is not None for o in ok)),
        },
        "n_folds": k,
        "arrays": {
            "images": {"file": "images.npy", "shape": list(images.shape), "dtype": "float32", "range": [-1, 1]},
            "lung_masks": {"file": "lung_masks.npy", "shape": list(lung.shape), "dtype": "uint8", "range": [0, 1]},
            **({"masks": {"file": "masks.npy", "shape": list(images.shape), "dtype": "float32", "range": [0, 1]},
                "distractor": {"file": "distractor.npy", "shape": list(images.shape), "dtype": "float32", "range": [0, 1]},
                "marker": {"file": "marker.npy", "shape": list(images.shape), "dtype": "float32", "range": [0, 1]}}
               if have_masks else {}),
        },
        "slice_levels": list(cfg.slice_levels),
        "window_hu": list(cfg.window_hu),
        "config": cfg.model_dump(mode="json"),
        "validation": {k2: validation[k2] for k2 in ("success", "blocking_failed", "warnings", "docs")},
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=1))
    return IngestResult(out, digest, len(ok), int(len(patients) - len(ok)), int(len(files_df)), validation, summary)
