"""Small synthetic CT series written with pydicom, for ingestion tests.

``chest_volume`` draws a crude chest (air, body 40 HU with a -100 HU rim, two lungs at
``lung_hu`` that taper toward apex and base); ``write_series`` stores it as one DICOM file
per slice in OSIC style (``1.dcm`` = most superior slice, z decreasing) with knobs for the
quirks the reader must survive. Every file carries :data:`FAKE_PHI` so tests can prove
that none of it reaches an output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from components.config import IngestConfig

__all__ = ["FAKE_PHI", "small_cfg", "chest_volume", "write_series", "write_labels"]

FAKE_PHI: dict[str, str] = {
    "PatientName": "Doefake^Janetta^Q",
    "PatientBirthDate": "19430217",
    "InstitutionName": "Saint Nowhere Fakehospital",
    "InstitutionAddress": "12 Phantom Street Springfield",
    "ReferringPhysicianName": "Strangefake^Stephen",
    "AccessionNumber": "ACC99887766",
    "OtherPatientIDs": "MRN55501234",
    "StationName": "CTSTATIONXYZ9",
    "StudyDate": "20190314",
    "StudyID": "STUDY4242X",
}


def small_cfg(**overrides: Any) -> IngestConfig:
    """A fast ingestion config for tests (16 px, 8 slices minimum, 2 folds, 2 workers)."""
    base: dict[str, Any] = {"image_size": 16, "min_slices": 8, "n_folds": 2, "workers": 2, "seed": 0}
    base.update(overrides)
    return IngestConfig(**base)


def chest_volume(n_slices: int = 12, matrix: int = 48, lung_hu: float = -850.0, seed: int = 0) -> np.ndarray:
    """A crude chest in HU, float32 ``[S, H, W]``; lungs on slices 1..S-2."""
    rng = np.random.default_rng(seed)
    c = (np.arange(matrix) - (matrix - 1) / 2) / (matrix / 2)
    x, y = np.meshgrid(c, c)
    vol = np.full((n_slices, matrix, matrix), -1000.0, dtype=np.float32)
    body = (x / 0.85) ** 2 + (y / 0.6) ** 2 <= 1
    rim = (x / 0.85) ** 2 + (y / 0.6) ** 2 > 0.85
    for k in range(n_slices):
        vol[k][body] = 40.0
        vol[k][body & rim] = -100.0
        u = (k - 0.5) / max(n_slices - 2, 1)  # 0 at apex .. 1 at base
        if 1 <= k <= n_slices - 2:
            r = 0.12 + 0.22 * np.sin(np.pi * min(max(u, 0.05), 0.95)) ** 0.5
            for cx in (-0.38, 0.38):
                vol[k][((x - cx) / r) ** 2 + (y / (1.3 * r)) ** 2 <= 1] = lung_hu
    vol += rng.normal(0, 8.0, vol.shape).astype(np.float32)
    return vol


def write_series(
    folder: Path,
    hu: np.ndarray,
    *,
    intercept: float = -1024.0,
    header_intercept: float | None = None,
    z0: float = 100.0,
    dz: float = 2.5,
    pixel_spacing: float = 0.7,
    series_uid: str | None = None,
    modality: str = "CT",
    first_number: int = 1,
    instance_numbers: list[int] | None = None,
    geometry: bool = True,
    circular_fov: bool = False,
    padding_value: int | None = None,
    signed: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    phi: bool = True,
    patient_id: str | None = None,
) -> list[Path]:
    """Write ``hu [S, H, W]`` as ``<first_number + k>.dcm``, slice 0 most superior.

    Args:
        intercept: the intercept used to compute stored values.
        header_intercept: the RescaleIntercept written (default ``intercept``); a different
            value simulates a wrong intercept.
        circular_fov: store padding outside the inscribed circle: ``padding_value`` if
            given (and written as PixelPaddingValue), else HU -3024.
        transfer_syntax: e.g. ``JPEG2000Lossless`` or ``RLELossless`` to compress.

    Returns:
        The written paths in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    s, h, w = hu.shape
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    stored_all = np.rint(hu - intercept)
    if circular_fov:
        c = np.arange(h) - (h - 1) / 2
        yy, xx = np.meshgrid(c, np.arange(w) - (w - 1) / 2, indexing="ij")
        outside = xx**2 + yy**2 > (min(h, w) / 2) ** 2
        pad_stored = padding_value if padding_value is not None else -3024 - intercept
        stored_all[:, outside] = pad_stored
    dtype = np.int16 if signed else np.uint16
    paths = []
    for k in range(s):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage if modality == "MR" else CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.Modality = modality
        ds.PatientID = patient_id or folder.name
        if phi:
            for key, value in FAKE_PHI.items():
                setattr(ds, key, value)
        ds.InstanceNumber = (instance_numbers[k] if instance_numbers else first_number + k)
        if geometry:
            ds.ImagePositionPatient = [-(w / 2) * pixel_spacing, -(h / 2) * pixel_spacing, z0 - k * dz]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = dz
        ds.PixelSpacing = [pixel_spacing, pixel_spacing]
        ds.Rows, ds.Columns = h, w
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept = intercept if header_intercept is None else header_intercept
        ds.RescaleSlope = 1
        if circular_fov and padding_value is not None:
            ds.PixelPaddingValue = int(padding_value)
        arr = stored_all[k].astype(dtype)
        ds.PixelData = arr.tobytes()
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax, arr)
        path = folder / f"{first_number + k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_labels(path: Path, rows: list[dict[str, Any]] | dict[str, int]) -> Path:
    """Write a ``labels.csv``; ``{patient: label}`` or a list of row dicts."""
    import pandas as pd

    if isinstance(rows, dict):
        rows = [{"Patient": p, "mortality_1y": y} for p, y in rows.items()]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
