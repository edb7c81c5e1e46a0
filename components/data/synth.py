"""Write a synthetic OSIC-format CT cohort to disk (``diffexplainer synth``, DESIGN.md §3, §7).

Layout under ``root``::

    train/<PatientID>/<n>.dcm   CT Image Storage, n = 1..S, file n = phantom slice n-1
    train.csv                   Patient,Weeks,FVC,Percent,Age,Sex,SmokingStatus (Kaggle)
    labels.csv                  Patient,mortality_1y,cohort,marker
    masks/<PatientID>.npz       mask, distractor, marker: uint8 [S,H,W]; z: float64 [S]
    cohort.json                 generator parameters, label model, per-patient extent, marker

Two scanners: ``osic`` stores unsigned 12-bit values with RescaleIntercept -1024 on a square
field of view; ``external`` stores signed values with RescaleIntercept 0, a larger matrix, a
circular field of view padded with -3024, and more noise. Labels follow
``p = sigmoid(beta0 + beta_extent * extent + beta_age * (age - 70) / 10)`` with ``beta0``
solved so that the population prevalence matches the cohort's target. Every file carries
the fake PHI of :data:`FAKE_PHI` so that ingestion tests can prove it never leaks. Output
is a pure function of ``(cohort, n_patients, seed, cfg)``: DICOM files are byte-identical
across runs and worker counts.

The planted shortcut (``marker`` column, DESIGN.md §5b): a radiopaque tag outside the body on
every slice of a marked patient (:mod:`components.data.phantom`). With
``cfg.marker_label_association`` ``a`` the marker copies the label with probability ``a`` and
is otherwise present with probability ``cfg.marker_fraction``, independently of the label
(``a = 0``, the default: independent; ``a = 1``: present iff positive). It is drawn from its
own random stream, so the labels and every other attribute are those of a cohort without it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from components.config import SynthConfig
from components.data.phantom import COMPONENTS, DEFAULT_FOV_MM, PAD_HU, Phantom, phantom_volume
from components.errors import UserError

__all__ = [
    "COHORTS",
    "FAKE_PHI",
    "BETA_EXTENT",
    "BETA_AGE",
    "CohortSummary",
    "LabelModel",
    "PatientRecord",
    "ScannerProfile",
    "draw_patients",
    "label_model",
    "patient_id",
    "patient_phantom",
    "scanner_profile",
    "write_cohort",
]

Cohort = Literal["osic", "external"]
COHORTS: tuple[str, ...] = ("osic", "external")
_COHORT_CODE = {"osic": 1, "external": 2}

#: Fake identifying values written into every DICOM file; they must never reach a dataset.
FAKE_PHI: dict[str, str] = {
    "PatientName": "CANARY^PHI^SYNTHETIC",
    "PatientBirthDate": "19470312",
    "InstitutionName": "Canary PHI Test Hospital",
    "ReferringPhysicianName": "LEAK^CANARY^DR",
}

#: Label model slopes: extent dominates (its spread is ~8x that of the age term).
BETA_EXTENT = 25.0
BETA_AGE = 0.5
_EXTENT_SCALE, _EXTENT_BETA = 0.8, (1.6, 3.2)  # extent ~ 0.8 * Beta(1.6, 3.2)
_AGE_MEAN, _AGE_SD, _AGE_RANGE = 67.0, 8.0, (49.0, 88.0)
_OUTPUTS = ("train", "masks", "train.csv", "labels.csv", "cohort.json")


@dataclass(frozen=True)
class ScannerProfile:
    """How one (synthetic) scanner stores its images."""

    name: str
    manufacturer: str
    model: str
    matrix: int
    rescale_intercept: float
    pixel_representation: int  # 0 = unsigned, 1 = signed
    bits_stored: int
    noise_hu: float
    circular_fov: bool
    slice_thickness: float
    kernel: str


def scanner_profile(cohort: Cohort, cfg: SynthConfig) -> ScannerProfile:
    """The storage convention of ``cohort`` (matrix from ``cfg``)."""
    if cohort == "osic":
        return ScannerProfile("osic", "SYNTHETIC OSIC", "Phantom-16", cfg.osic_matrix, -1024.0,
                              0, 12, 12.0, False, 1.25, "STANDARD")
    return ScannerProfile("external", "SYNTHETIC EXTERNAL", "Phantom-64", cfg.external_matrix, 0.0,
                          1, 16, 25.0, True, 1.0, "LUNG")


@dataclass(frozen=True)
class LabelModel:
    """``p = sigmoid(beta0 + beta_extent * extent + beta_age * (age - 70) / 10)``."""

    beta0: float
    beta_extent: float
    beta_age: float
    prevalence: float

    def probability(self, extent: np.ndarray | float, age: np.ndarray | float) -> np.ndarray:
        """Mortality probability in (0, 1) for extent in [0, 1] and age in years."""
        age_decades = (np.asarray(age) - 70.0) / 10.0
        logit = self.beta0 + self.beta_extent * np.asarray(extent) + self.beta_age * age_decades
        return 1.0 / (1.0 + np.exp(-logit))


def _draw_extent_age(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    extent = _EXTENT_SCALE * rng.beta(*_EXTENT_BETA, size=n)
    age = np.round(np.clip(rng.normal(_AGE_MEAN, _AGE_SD, size=n), *_AGE_RANGE))
    return extent, age


@lru_cache(maxsize=16)
def label_model(prevalence: float) -> LabelModel:
    """Solve ``beta0`` so that the population prevalence equals ``prevalence`` (0 < p < 1).

    The population is a fixed 200,000-draw reference sample of (extent, age), so ``beta0``
    depends only on ``prevalence``.
    """
    extent, age = _draw_extent_age(np.random.default_rng(20240606), 200_000)
    lo, hi = -80.0, 40.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        mean_p = float(LabelModel(mid, BETA_EXTENT, BETA_AGE, prevalence).probability(extent, age).mean())
        lo, hi = (mid, hi) if mean_p < prevalence else (lo, mid)
    return LabelModel(0.5 * (lo + hi), BETA_EXTENT, BETA_AGE, prevalence)


@dataclass(frozen=True)
class PatientRecord:
    """One synthetic patient's non-image attributes (no PHI)."""

    index: int
    patient_id: str
    age: int
    sex: str
    smoking: str
    extent: float
    n_ggo: int
    fov_mm: float
    p: float
    label: int
    image_seed: int
    marker: int = 0


def patient_id(seed: int, cohort: Cohort, index: int, salt: int = 0) -> str:
    """Kaggle-style 25-character id (``ID00`` + 21 digits), deterministic per seed/cohort/index."""
    digest = hashlib.sha256(f"diffexplainer-synth:{seed}:{cohort}:{index}:{salt}".encode()).digest()
    return "ID00" + f"{int.from_bytes(digest[:16], 'big') % 10**21:021d}"


def draw_patients(cohort: Cohort, n_patients: int, seed: int, cfg: SynthConfig) -> list[PatientRecord]:
    """Draw patient attributes and labels without rendering images.

    Patient ``i`` depends only on ``(seed, cohort, i)`` and the cohort prevalence, so a
    larger draw extends a smaller one.
    """
    model = label_model(cfg.osic_prevalence if cohort == "osic" else cfg.external_prevalence)
    records: list[PatientRecord] = []
    seen: set[str] = set()
    for i in range(n_patients):
        rng = np.random.default_rng([seed, _COHORT_CODE[cohort], i, 0])
        extent, age = _draw_extent_age(rng)
        sex = "Male" if rng.random() < 0.79 else "Female"
        smoking = str(rng.choice(["Ex-smoker", "Never smoked", "Currently smokes"], p=[0.67, 0.28, 0.05]))
        n_ggo = int(rng.poisson(1.2))
        fov_mm = round(float(DEFAULT_FOV_MM * rng.uniform(0.96, 1.08)), 1)
        p = float(model.probability(extent, age))
        label = int(rng.random() < p)
        pid, salt = patient_id(seed, cohort, i), 0
        while pid in seen:
            salt += 1
            pid = patient_id(seed, cohort, i, salt)
        seen.add(pid)
        image_seed = int(np.random.SeedSequence([seed, _COHORT_CODE[cohort], i, 1]).generate_state(1)[0])
        copy, present = np.random.default_rng([seed, _COHORT_CODE[cohort], i, 3]).random(2)
        marker = label if copy < cfg.marker_label_association else int(present < cfg.marker_fraction)
        records.append(PatientRecord(i, pid, int(age), sex, smoking, float(extent), n_ggo, fov_mm, p,
                                     label, image_seed, int(marker)))
    return records


def patient_phantom(rec: PatientRecord, profile: ScannerProfile, n_slices: int, marker_mm: float,
                    components: tuple[str, ...] = COMPONENTS) -> Phantom:
    """The phantom of one synthetic patient, as :func:`write_cohort` renders it.

    Args:
        rec: the patient (from :func:`draw_patients`).
        profile: the cohort's scanner.
        n_slices: slices per patient.
        marker_mm: side of the marker (``SynthConfig.marker_size_mm``); drawn when ``rec.marker``.
        components: the components drawn (leave one out for an intervention).
    """
    return phantom_volume(profile.matrix, n_slices, extent=rec.extent, n_ggo=rec.n_ggo,
                          noise_hu=profile.noise_hu, fov_mm=rec.fov_mm, circular_fov=profile.circular_fov,
                          seed=rec.image_seed, marker=bool(rec.marker), marker_mm=marker_mm,
                          components=components)


@dataclass(frozen=True)
class CohortSummary:
    """What :func:`write_cohort` wrote: ``n_files`` DICOM files, ``bytes`` over all files."""

    root: Path
    cohort: str
    n_patients: int
    n_positive: int
    n_files: int
    bytes: int
    seconds: float


def _uid(seed: int, *parts: object) -> str:
    """Deterministic UID (pydicom's root + a hash of the parts; prefix=None would be random)."""
    return str(generate_uid(entropy_srcs=["diffexplainer-synth", str(seed), *map(str, parts)]))


def _stored_pixels(hu: np.ndarray, profile: ScannerProfile) -> np.ndarray:
    """HU float32 [H,W] -> stored values (uint16 or int16) so that HU = stored + intercept."""
    raw = np.rint(hu - profile.rescale_intercept)
    if profile.pixel_representation == 0:
        return np.clip(raw, 0, 2**profile.bits_stored - 1).astype("<u2")
    return np.clip(raw, -(2 ** (profile.bits_stored - 1)), 2 ** (profile.bits_stored - 1) - 1).astype("<i2")


def _series_template(ph: Phantom, rec: PatientRecord, profile: ScannerProfile, seed: int) -> Dataset:
    """The tags shared by every slice of one patient's CT series."""
    pid = rec.patient_id
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    study_date = f"2020{1 + rec.index % 12:02d}{1 + rec.index % 28:02d}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.Modality = "CT"
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model
    for keyword, value in FAKE_PHI.items():
        setattr(ds, keyword, value)
    ds.PatientID = pid
    ds.PatientSex = rec.sex[0]
    ds.PatientAge = f"{rec.age:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = profile.slice_thickness
    ds.KVP = 120
    ds.ConvolutionKernel = profile.kernel
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(seed, profile.name, pid, "study")
    ds.SeriesInstanceUID = _uid(seed, profile.name, pid, "series")
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = _uid(seed, profile.name, pid, "frame")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ph.hu.shape[1:]
    ds.PixelSpacing = [ph.pixel_spacing, ph.pixel_spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = profile.bits_stored
    ds.HighBit = profile.bits_stored - 1
    ds.PixelRepresentation = profile.pixel_representation
    if profile.circular_fov:
        ds.PixelPaddingValue = int(PAD_HU - profile.rescale_intercept)
    ds.WindowCenter = -600
    ds.WindowWidth = 1500
    ds.RescaleIntercept = profile.rescale_intercept
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return ds


def _set_slice(ds: Dataset, ph: Phantom, k: int, sop_uid: str, profile: ScannerProfile) -> None:
    """Fill the per-slice tags of ``ds`` with slice ``k`` (InstanceNumber k + 1), in place."""
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [round(ph.origin_xy[0], 4), round(ph.origin_xy[1], 4), float(ph.z[k])]
    ds.SliceLocation = float(ph.z[k])
    ds.PixelData = _stored_pixels(ph.hu[k], profile).tobytes()


def _write_patient(root: Path, rec: PatientRecord, profile: ScannerProfile, n_slices: int,
                   seed: int, marker_mm: float) -> dict[str, float]:
    """Render and write one patient (DICOM series + mask file); returns its statistics."""
    ph = patient_phantom(rec, profile, n_slices, marker_mm)
    series = root / "train" / rec.patient_id
    series.mkdir(parents=True, exist_ok=True)
    ds = _series_template(ph, rec, profile, seed)
    for k in range(n_slices):
        _set_slice(ds, ph, k, _uid(seed, profile.name, rec.patient_id, "image", k), profile)
        ds.save_as(series / f"{k + 1}.dcm", enforce_file_format=True)
    np.savez_compressed(root / "masks" / f"{rec.patient_id}.npz", mask=ph.mask,
                        distractor=ph.distractor, marker=ph.marker, z=ph.z)
    lung = max(int(ph.lung.sum()), 1)
    return {"mask_fraction": float(ph.mask.sum()) / lung,
            "distractor_fraction": float(ph.distractor.sum()) / lung}


def _clinical_rows(rec: PatientRecord, seed: int, cohort: Cohort) -> list[list[object]]:
    """Kaggle ``train.csv`` rows: FVC visits declining faster with more disease."""
    rng = np.random.default_rng([seed, _COHORT_CODE[cohort], rec.index, 2])
    male = rec.sex == "Male"
    height = rng.normal(1.75, 0.07) if male else rng.normal(1.62, 0.06)
    predicted_ml = 1000.0 * ((5.76 * height - 4.34) if male else (4.43 * height - 2.89)) - 26.0 * rec.age
    percent0 = float(np.clip(85.0 - 45.0 * rec.extent + rng.normal(0.0, 12.0), 35.0, 130.0))
    slope = -(2.0 + 14.0 * rec.extent) * (1.0 + 0.3 * rng.standard_normal())
    gaps = rng.integers(4, 14, size=int(rng.integers(4, 9)))
    weeks = int(rng.integers(-5, 6)) + np.concatenate([[0], np.cumsum(gaps)])
    rows = []
    for w in weeks:
        fvc = int(round(percent0 / 100.0 * predicted_ml + slope * (w - weeks[0]) + rng.normal(0.0, 60.0)))
        rows.append([rec.patient_id, int(w), fvc, 100.0 * fvc / predicted_ml, rec.age, rec.sex, rec.smoking])
    return rows


def _prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise UserError(f"{root}: directory is not empty (use overwrite to replace a cohort)")
        for name in _OUTPUTS:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)


def _write_tables(root: Path, cohort: Cohort, seed: int, records: list[PatientRecord]) -> None:
    with (root / "train.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Patient", "Weeks", "FVC", "Percent", "Age", "Sex", "SmokingStatus"])
        for rec in records:
            writer.writerows(_clinical_rows(rec, seed, cohort))
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Patient", "mortality_1y", "cohort", "marker"])
        writer.writerows([rec.patient_id, rec.label, cohort, rec.marker] for rec in records)


def _output_bytes(root: Path) -> int:
    """Total size of the generator's outputs under ``root``."""
    paths = [root / name for name in _OUTPUTS]
    files = [p for p in paths if p.is_file()] + [f for p in paths if p.is_dir() for f in p.rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_cohort(
    root: Path,
    cohort: Literal["osic", "external"],
    n_patients: int,
    seed: int,
    cfg: SynthConfig,
    progress: Callable[[str], None] | None = None,
    *,
    overwrite: bool = False,
    workers: int = 2,
) -> CohortSummary:
    """Write an OSIC-layout synthetic cohort with labels and ground-truth masks.

    Args:
        root: output folder; created if missing, must be empty unless ``overwrite``.
        cohort: ``"osic"`` (training scanner) or ``"external"`` (shifted scanner).
        n_patients: number of patients (>= 1).
        seed: non-negative seed; the same seed gives byte-identical DICOM files.
        cfg: matrices, slices per patient and target prevalences.
        progress: receives a line every ~10 % of patients; ``None`` prints to stderr.
        overwrite: replace a previous cohort's outputs under ``root`` (other files stay).
        workers: processes rendering patients in parallel (1 = in this process).

    Returns:
        A :class:`CohortSummary` (DICOM file count, total bytes written, wall seconds).

    Raises:
        UserError: unknown cohort, bad count / seed / workers, or a non-empty ``root``.
    """
    start = time.perf_counter()
    if cohort not in COHORTS:
        raise UserError(f"unknown cohort {cohort!r}; expected one of: {', '.join(COHORTS)}")
    for name, value, low in (("n_patients", n_patients, 1), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    root = Path(root)
    report = progress or _stderr
    _prepare_root(root, overwrite)
    records = draw_patients(cohort, n_patients, seed, cfg)
    profile = scanner_profile(cohort, cfg)
    n_slices = cfg.slices_per_patient
    stats: dict[int, dict[str, float]] = {}
    step = max(1, -(-n_patients // 10))

    def done(index: int, result: dict[str, float]) -> None:
        stats[index] = result
        if len(stats) % step == 0 or len(stats) == n_patients:
            report(f"synth {cohort}: {len(stats)}/{n_patients} patients "
                   f"({100 * len(stats) // n_patients}%), {time.perf_counter() - start:.1f} s")

    if workers == 1 or n_patients == 1:
        for rec in records:
            done(rec.index, _write_patient(root, rec, profile, n_slices, seed, cfg.marker_size_mm))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, n_patients), mp_context=context) as pool:
            futures = {pool.submit(_write_patient, root, rec, profile, n_slices, seed, cfg.marker_size_mm): rec.index
                       for rec in records}
            for future in as_completed(futures):
                done(futures[future], future.result())

    _write_tables(root, cohort, seed, records)
    model = label_model(cfg.osic_prevalence if cohort == "osic" else cfg.external_prevalence)
    n_positive = sum(rec.label for rec in records)
    meta = {
        "generator": "components.data.synth",
        "format_version": 1,
        "cohort": cohort,
        "seed": seed,
        "n_patients": n_patients,
        "slices_per_patient": n_slices,
        "config": cfg.model_dump(),
        "scanner": asdict(profile),
        "extent_distribution": f"{_EXTENT_SCALE} * Beta{_EXTENT_BETA}",
        "age_distribution": f"round(clip(Normal({_AGE_MEAN}, {_AGE_SD}), {_AGE_RANGE}))",
        "label_model": {
            "formula": "p = sigmoid(beta0 + beta_extent * extent + beta_age * (age - 70) / 10)",
            **asdict(model),
            "achieved_prevalence": n_positive / n_patients,
        },
        "marker": {
            "fraction": cfg.marker_fraction,
            "label_association": cfg.marker_label_association,
            "size_mm": cfg.marker_size_mm,
            "achieved_fraction": sum(rec.marker for rec in records) / n_patients,
        },
        "patients": [
            {"Patient": rec.patient_id, "mortality_1y": rec.label, "p": round(rec.p, 6),
             "extent": round(rec.extent, 6), "age": rec.age, "n_ggo": rec.n_ggo, "marker": rec.marker,
             **{key: round(val, 6) for key, val in stats[rec.index].items()}}
            for rec in records
        ],
    }
    (root / "cohort.json").write_text(json.dumps(meta, indent=1) + "\n")
    n_files = n_patients * n_slices
    return CohortSummary(root, cohort, n_patients, n_positive, n_files, _output_bytes(root),
                         time.perf_counter() - start)
