"""Great Expectations 1.x suites over the per-file and per-patient tables of an ingest.

Each expectation has a stable name (``files.modality_is_ct``, ``patients.slice_count_min``,
...; :data:`EXPECTATION_NAMES`) stored in its ``meta``. Which failures stop the run is
``IngestConfig.blocking_expectations``; every other failure is a warning. Both tables
describe the *input* (all readable DICOM files; all patient folders), so a warning here is
a data-quality finding, while quarantine keeps the emitted dataset clean.

Without ``docs_dir`` the checks run in an ephemeral context; with it, in a file context
rooted there, whose checkpoint also renders HTML Data Docs
(``<docs_dir>/gx/uncommitted/data_docs/local_site/index.html``). Only PHI-free columns are
passed to GX (see :class:`components.data.dicom_header.FileRecord`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from components.config import IngestConfig
from components.errors import UserError

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

__all__ = [
    "EXPECTATION_NAMES",
    "PreparedValidation",
    "check_blocking_names",
    "prepare_validation",
    "run_validation",
    "validate_tables",
]

EXPECTATION_NAMES = (
    "files.modality_is_ct",
    "files.rows_in_range",
    "files.cols_in_range",
    "files.pixel_spacing_positive",
    "files.sop_uid_unique",
    "files.position_present",
    "files.intercept_typical",
    "patients.unique",
    "patients.slice_count_min",
    "patients.label_present",
    "patients.label_binary",
    "patients.slice_spacing_positive",
    "patients.air_hu_plausible",
    "patients.lung_hu_plausible",
)


def check_blocking_names(names: list[str]) -> None:
    """Raise a one-line :class:`UserError` for a blocking name that is not an expectation."""
    unknown = [n for n in names if n not in EXPECTATION_NAMES]
    if unknown:
        raise UserError(
            f"ingest.blocking_expectations: unknown {', '.join(unknown)}; known: {', '.join(EXPECTATION_NAMES)}"
        )


def _suites(cfg: IngestConfig) -> dict[str, list[Any]]:
    import great_expectations.expectations as gxe

    lo, hi = cfg.matrix_range

    def m(name: str) -> dict[str, str]:
        return {"name": name}

    files = [
        gxe.ExpectColumnValuesToBeInSet(column="modality", value_set=["CT"], meta=m("files.modality_is_ct")),
        gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=lo, max_value=hi, meta=m("files.rows_in_range")),
        gxe.ExpectColumnValuesToBeBetween(column="cols", min_value=lo, max_value=hi, meta=m("files.cols_in_range")),
        gxe.ExpectColumnValuesToBeBetween(
            column="pixel_spacing_mm", min_value=0, strict_min=True, meta=m("files.pixel_spacing_positive")
        ),
        gxe.ExpectColumnValuesToBeUnique(column="sop", meta=m("files.sop_uid_unique")),
        gxe.ExpectColumnValuesToBeInSet(column="has_position", value_set=[True], meta=m("files.position_present")),
        gxe.ExpectColumnValuesToBeInSet(
            column="rescale_intercept", value_set=[-1024.0, -1000.0, 0.0], meta=m("files.intercept_typical")
        ),
    ]
    patients = [
        gxe.ExpectColumnValuesToBeUnique(column="patient", meta=m("patients.unique")),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_slices", min_value=cfg.min_slices, meta=m("patients.slice_count_min")
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="label_raw", meta=m("patients.label_present")),
        gxe.ExpectColumnValuesToBeInSet(column="label_raw", value_set=["0", "1"], meta=m("patients.label_binary")),
        gxe.ExpectColumnValuesToBeBetween(
            column="slice_spacing_mm", min_value=0, strict_min=True, meta=m("patients.slice_spacing_positive")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="air_hu", min_value=cfg.air_hu_range[0], max_value=cfg.air_hu_range[1],
            meta=m("patients.air_hu_plausible"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="lung_hu", min_value=cfg.lung_hu_range[0], max_value=cfg.lung_hu_range[1],
            meta=m("patients.lung_hu_plausible"),
        ),
    ]
    return {"files": files, "patients": patients}


def _summarise(name: str, res: Any) -> dict[str, Any]:
    r = res.result or {}
    cfg = res.expectation_config
    return {
        "name": name,
        "type": cfg.type,
        "column": cfg.kwargs.get("column"),
        "success": bool(res.success),
        "element_count": r.get("element_count"),
        "unexpected_count": r.get("unexpected_count"),
        "partial_unexpected": [str(v) for v in (r.get("partial_unexpected_list") or [])[:5]],
        "exception": bool((res.exception_info or {}).get("raised_exception")),
    }


@dataclass
class PreparedValidation:
    """A GX context with both suites and validation definitions registered (no data yet).

    Attributes:
        ctx: the GX data context.
        definitions: ``{"files": ValidationDefinition, "patients": ...}``.
        blocking: names of blocking expectations.
        docs_dir: Data Docs root, or ``None``.
    """

    ctx: Any
    definitions: dict[str, Any]
    blocking: set[str]
    docs_dir: Path | None


def prepare_validation(cfg: IngestConfig, docs_dir: Path | None = None) -> PreparedValidation:
    """Import Great Expectations and register the suites; the data-independent part.

    Ingestion runs this in a background thread while the patients are read (importing GX
    and creating a file context take seconds).

    Args:
        cfg: thresholds and ``blocking_expectations``.
        docs_dir: when given, a GX file context there (and HTML Data Docs later).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    check_blocking_names(cfg.blocking_expectations)
    ctx: AbstractDataContext
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(docs_dir))
    else:
        ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_or_update_pandas("ingest")
    definitions: dict[str, Any] = {}
    for table, expectations in _suites(cfg).items():
        asset = source.add_dataframe_asset(table)
        batch = asset.add_batch_definition_whole_dataframe(f"{table}-all")
        suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=f"ingest-{table}", expectations=expectations))
        definitions[table] = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"ingest-{table}", data=batch, suite=suite)
        )
    return PreparedValidation(ctx, definitions, set(cfg.blocking_expectations), docs_dir)


def run_validation(prepared: PreparedValidation, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Validate the tables against prepared suites and build the Data Docs.

    Args:
        prepared: from :func:`prepare_validation`.
        tables: ``{"files": df, "patients": df}`` with the columns the suites name.

    Returns:
        See :func:`validate_tables`.
    """
    summaries: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for table, vdef in prepared.definitions.items():
        result = vdef.run(batch_parameters={"dataframe": tables[table]})
        raw[table] = result.to_json_dict()
        for res in result.results:
            summaries.append({"table": table, **_summarise(res.expectation_config.meta["name"], res)})
    failed = [s["name"] for s in summaries if not s["success"]]
    docs = None
    docs_dir = prepared.docs_dir
    if docs_dir is not None:
        prepared.ctx.build_data_docs()
        index = docs_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        docs = index.relative_to(docs_dir).as_posix() if index.is_file() else None
    return {
        "success": not failed,
        "blocking_failed": [n for n in failed if n in prepared.blocking],
        "warnings": [n for n in failed if n not in prepared.blocking],
        "expectations": summaries,
        "docs": docs,
        "gx": raw,
    }


def validate_tables(
    tables: dict[str, pd.DataFrame], cfg: IngestConfig, docs_dir: Path | None = None
) -> dict[str, Any]:
    """Run the ``files`` and ``patients`` suites.

    Args:
        tables: ``{"files": df, "patients": df}`` with the columns the suites name.
        cfg: thresholds and ``blocking_expectations``.
        docs_dir: when given, a GX file context there and HTML Data Docs.

    Returns:
        JSON-serialisable dict: ``success`` (every expectation passed), ``blocking_failed``
        and ``warnings`` (names), ``expectations`` (one summary per expectation), ``docs``
        (Data Docs index path relative to ``docs_dir`` or ``None``) and ``gx`` (the raw GX
        validation results per suite).
    """
    return run_validation(prepare_validation(cfg, docs_dir), tables)

