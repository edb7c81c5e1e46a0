"""Typed configuration for every pipeline stage.

One YAML file configures a run; each top-level key maps to one section model below. All
models forbid unknown keys, so a typo is a one-line :class:`~components.errors.UserError`
naming the key (``config.yaml: diffae.lerning_rate: unknown key``).

Presets live in ``configs/<name>.yaml`` (``cpu-small`` is the default; ``paper`` is the
256 px GPU setting of Fang et al.). A user config may start with ``preset: NAME`` and then
override any subset of keys; the preset is loaded first and the file is deep-merged on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.errors import UserError
from components.nested import deep_merge

__all__ = [
    "StrictModel",
    "SynthConfig",
    "IngestConfig",
    "DiffAEConfig",
    "TeacherConfig",
    "AgentConfig",
    "GateConfig",
    "CounterfactualConfig",
    "TrackingConfig",
    "DriftConfig",
    "ExperimentConfig",
    "CONFIG_DIR",
    "load_config",
    "preset_path",
]

_Objective = Literal["L1", "MSE", "KL"]
_Augmentation = Literal["flip", "shift+x", "shift-x", "shift+y", "shift-y"]
_Baseline = Literal["gradcam", "gradcampp", "saliency", "integrated_gradients", "occlusion"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class StrictModel(BaseModel):
    """Base for all config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class SynthConfig(StrictModel):
    """Synthetic OSIC-format cohort generation (DESIGN.md §7)."""

    osic_patients: int = Field(240, ge=1)
    external_patients: int = Field(120, ge=1)
    slices_per_patient: int = Field(16, ge=4)
    osic_matrix: int = Field(128, ge=32, description="rows = columns of the training cohort")
    external_matrix: int = Field(160, ge=32, description="larger matrix of the external scanner")
    osic_prevalence: float = Field(0.037, gt=0, lt=1, description="OSIC: 27/731 deceased")
    external_prevalence: float = Field(0.086, gt=0, lt=1, description="external: 43/501")
    marker_fraction: float = Field(
        0.5, ge=0, le=1,
        description="share of patients carrying the planted shortcut marker (a radiopaque tag outside the "
        "body, on every slice) when it is drawn independently of the label",
    )
    marker_label_association: float = Field(
        0.0, ge=0, le=1,
        description="0 = marker independent of the label (drawn with marker_fraction); 1 = marker present iff "
        "the label is positive; in between, the marker copies the label with this probability",
    )
    marker_size_mm: float = Field(
        36.0, gt=0,
        description="side of the square marker; 36 mm is 3 output pixels of a 32 px ingest of a "
        "<= 387 mm field of view (at least 2 whole pixels wherever it falls)",
    )
    seed: int = 0


class IngestConfig(StrictModel):
    """DICOM ingestion, validation and slice selection."""

    image_size: int = Field(32, ge=8, description="output H = W in pixels")
    slice_levels: list[float] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6, 0.8],
        description="relative levels of the lung extent (0 = apex end, 1 = base end)",
    )
    window_hu: tuple[float, float] = (-1000.0, 200.0)
    min_slices: int = Field(8, ge=4)
    air_hu_range: tuple[float, float] = (-1100.0, -900.0)
    lung_hu_range: tuple[float, float] = (-950.0, -600.0)
    hu_autocorrect: bool = Field(
        True, description="correct an unambiguous wrong RescaleIntercept instead of quarantining"
    )
    lung_area_fraction: float = Field(
        0.1, gt=0, lt=1, description="lung extent: slices with lung area >= this fraction of the max"
    )
    matrix_range: tuple[int, int] = Field((16, 2048), description="plausible rows / columns")
    n_folds: int = Field(5, ge=2)
    seed: int = 0
    workers: int = Field(2, ge=1)
    blocking_expectations: list[str] = Field(
        default_factory=list,
        description="names of Great Expectations expectations whose failure stops the run",
    )
    s3_endpoint_url: str | None = None
    hand_parser: bool = Field(
        True,
        description="read native DICOM headers and pixels with the built-in byte scanner; False: pydicom's "
        "dcmread (header tags only) and pixel decoding (the ingest benchmark's ablation)",
    )
    require_chest: bool = Field(
        True,
        description="quarantine series that fail the air/lung HU check or show no lung; False (explain --lenient) "
        "keeps them, taking the slice levels over the whole series and noting it",
    )

    @field_validator("slice_levels")
    @classmethod
    def _four_levels(cls, v: list[float]) -> list[float]:
        if len(v) != 4 or any(not 0.0 <= x <= 1.0 for x in v):
            raise ValueError("must be 4 values in [0, 1]")
        return v


class DiffAEConfig(StrictModel):
    """Diffusion autoencoder: semantic encoder + conditional UNet + DDIM."""

    image_size: int = Field(32, ge=8)
    base_channels: int = Field(32, ge=4)
    channel_mults: list[int] = Field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = Field(1, ge=1)
    attention_resolutions: list[int] = Field(default_factory=lambda: [8])
    z_dim: int = Field(512, ge=8)
    encoder_channels: int = Field(32, ge=4)
    timesteps: int = Field(1000, ge=10)
    beta_schedule: Literal["linear", "cosine"] = "linear"
    loss: Literal["l1", "l2"] = "l1"
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(100, ge=0)
    ema_decay: float = Field(0.995, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    max_steps: int = Field(3000, ge=1)
    max_minutes: float = Field(10.0, gt=0)
    checkpoint_every: int = Field(250, ge=1)
    early_checkpoint_step: int = Field(
        200, ge=0, description="also keep the EMA weights at this step as diffae_early.pt beside the checkpoint: "
        "the reconstruction gate's negative control in benchmarks/gate_stability.py (issue #11); 0 = off",
    )
    ddim_steps: int = Field(
        50, ge=1, description="DDIM steps of every inversion and decode: the reconstruction gate, the latent "
        "caches and (unless counterfactual.ddim_steps overrides it) the counterfactual evaluation",
    )
    augment_flip: bool = True
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="after warm-up: constant, or cosine decay to min_lr_ratio·lr over the run "
        "(run progress = max(step / max_steps, elapsed / max_minutes))",
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    inversion_fixed_point_iters: int = Field(
        1, ge=0, le=10,
        description="refinement iterations per DDIM-inversion step (0 = plain inversion); "
        "each costs one network evaluation per step and sharpens the reconstruction",
    )
    cpu_bf16_autocast: bool = Field(
        False, description="train under bf16 autocast on CPU too (always on CUDA). Opt-in: 1.3-1.7x training "
        "images/s on this avx512_bf16 CPU (benchmarks/diffae.py ours_bf16: UNet step 1.27x, rounds 1.26-1.35; "
        "encoder + UNet step 1.3-1.7x in a one-off probe). Left off: the two bf16 DiffAEs measured kept the "
        "reconstruction quality (PSNR 41.2-41.3 dB as fp32) but passed the counterfactual gate for 7 and 8 of 10 "
        "teacher seeds (fp32 DiffAEs: 9 and 10 of 10; README, issue #13)",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0


class TeacherConfig(StrictModel):
    """The default black box: MONAI DenseNet on the 4-slice stack."""

    arch: Literal["densenet121", "densenet-small", "resnet"] = "densenet121"
    init_features: int = Field(64, ge=4, description="densenet-small only")
    growth_rate: int = Field(32, ge=4, description="densenet-small only")
    block_config: list[int] = Field(
        default_factory=lambda: [6, 12, 24, 16], description="densenet-small only"
    )
    resnet_block: Literal["basic", "bottleneck"] = "basic"
    resnet_layers: list[int] = Field(default_factory=lambda: [2, 2, 2, 2])
    resnet_channels: list[int] = Field(default_factory=lambda: [64, 128, 256, 512])
    dropout: float = Field(0.0, ge=0, lt=1)
    num_classes: int = Field(2, ge=2)
    folds_to_train: int = Field(5, ge=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-6, gt=0, description="peak lr of the one-cycle schedule")
    weight_decay: float = Field(1e-4, ge=0)
    augment_flip: bool = Field(True, description="random left-right flips of the stack")
    augment_noise_std: float = Field(
        0.0, ge=0, description="max std of MONAI RandGaussianNoise (std drawn uniformly up to it) added to "
        "training stacks ([-1,1] units); 0 = off"
    )
    augment_translate_px: float = Field(
        0.0, ge=0, description="max in-plane shift (pixels) of a MONAI RandAffine per training stack; 0 = off"
    )
    augment_scale: float = Field(
        0.0, ge=0, lt=0.5, description="max relative zoom of the MONAI RandAffine per training stack; 0 = off"
    )
    max_minutes: float = Field(180.0, gt=0, description="wall-clock budget over all folds")
    min_epochs: int = Field(
        0, ge=0, description="epochs per fold that the wall-clock budget never cuts (the one-cycle schedule then "
        "anneals over them): a loaded machine makes training slower, not a worse teacher; 0 = the budget alone; "
        "a value above epochs means every epoch (a preset's floor survives an override that lowers epochs)",
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _resnet_four_stages(self) -> TeacherConfig:
        if len(self.resnet_layers) != 4 or len(self.resnet_channels) != 4:
            raise ValueError("resnet_layers and resnet_channels need 4 entries (MONAI ResNet)")
        return self


class AgentConfig(StrictModel):
    """Linear agent distilled from the teacher on DiffAE latents."""

    objective: _Objective = "L1"
    report_objectives: list[_Objective] = Field(default_factory=lambda: list(get_args(_Objective)))
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    normalize_latents: bool = True
    augmentations: list[_Augmentation] = Field(
        default_factory=lambda: list(get_args(_Augmentation)),
        description="stack augmentations whose latents and black-box targets add agent training pairs",
    )
    ridge_init: bool = Field(
        True, description="initialise Linear(2048->F) from a cross-validated ridge fit"
    )
    ridge_alphas: list[float] = Field(
        default_factory=lambda: [10.0, 100.0, 1e3, 1e4, 1e5],
        description="RidgeCV candidate penalties (on standardised latents). Penalties <= 1 fit the "
        "black box's outputs as well but gave agents whose gradients the black box does not follow "
        "(cpu-small demo: counterfactual direction agreement 0.52 at penalty 1 vs 1.00 at 10-1000)",
    )
    val_fraction: float = Field(
        0.2, ge=0, lt=1, description="rows held out to pick the fine-tuning epoch; 0 = none"
    )
    patience: int = Field(
        20, ge=1, description="stop the epoch search after this many epochs without improvement"
    )
    threshold_rule: Literal["validation_f1", "crossfit_f1", "half"] = Field(
        "validation_f1",
        description="the agent's decision threshold on P(positive), fixed before the external cohort is seen: "
        "validation_f1 = F1-maximising on the held-out epoch-selection rows (20 % of the fit rows); crossfit_f1 = "
        "F1-maximising on the pooled out-of-fold scores of the cross-fit agents over every fit row (with "
        "gates.agent_crossfit; without it, validation_f1; each cross-fit agent keeps validation_f1); half = 0.5",
    )
    seed: int = 0


class GateConfig(StrictModel):
    """Promotion gates: floors on one-sided lower confidence bounds, and non-inferiority margins.

    A gate metric passes when its one-sided ``confidence`` bootstrap lower bound (BCa,
    ``n_resamples``, ``bootstrap_seed``; resampling cases) is >= its floor. With a champion,
    the paired-bootstrap lower bound of ``challenger - champion`` on the same cases must also be
    >= ``-noninferiority_delta[metric]``. See :mod:`components.gates`.
    """

    psnr_min: float = Field(35.0, description="dB, lower bound of the mean per-patient PSNR (external cohort)")
    ssim_min: float = Field(0.95, ge=0, le=1)
    decision_kept_min: float = Field(0.90, ge=0, le=1, description="black-box decision unchanged by reconstruction")
    semantic_psnr_min: float | None = Field(
        None, description="dB, lower bound of the mean PSNR of decoding each slice's z from a prior x_T ~ N(0, I) "
        "(what z alone carries; components.metrics.reconstruction_eval.semantic_reconstruction); None = reported, "
        "not gated",
    )
    semantic_cases: int = Field(
        60, ge=0, description="external patients (the first N) decoded from z alone for semantic_psnr; 0 = off",
    )
    agent_auc_min: float = Field(0.90, ge=0, le=1, description="agent score vs the black box's decision")
    agent_f1_min: float = Field(0.70, ge=0, le=1, description="at the agent threshold fixed from training data")
    direction_agreement_min: float = Field(0.90, ge=0, le=1)
    flip_gain_min: float = Field(0.15, ge=-1, le=1, description="flip rate minus the random direction's, same cases")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="one-sided confidence of every bound")
    n_resamples: int = Field(2000, ge=100)
    bootstrap_seed: int = 0
    noninferiority_delta: dict[str, float] = Field(
        default_factory=lambda: {"psnr": 0.5, "ssim": 0.005, "decision_kept": 0.05, "semantic_psnr": 1.0,
                                 "auc": 0.02, "f1": 0.05, "direction_agreement": 0.05, "flip_gain": 0.40},
        description="metric -> margin delta: challenger - champion must have lower bound >= -delta; "
        "a metric left out is not compared. Known: psnr, ssim, decision_kept, semantic_psnr (reconstruction), "
        "auc, f1 (agent), direction_agreement, flip_gain (counterfactual: the champion's own sweep on the "
        "challenger's cases; flip_gain on the cases indeterminate for both)",
    )
    noninferiority_delta_changed_blackbox: dict[str, float] = Field(
        default_factory=dict,
        description="margins that replace noninferiority_delta for the agent (auc, f1) and counterfactual "
        "(direction_agreement, flip_gain) metrics when the challenger's black box has other weights than the "
        "champion's: resampling the shared cases cannot see how far two trained black boxes of one recipe "
        "differ, so a margin for that comparison must include the measured spread between them "
        "(benchmarks/gate_stability.py agent_noninferiority_vs_seed0 / counterfactual_noninferiority_vs_seed0); "
        "a metric left out keeps its noninferiority_delta",
    )
    agent_holdout_fold: bool = Field(
        True, description="score the agent gate on the external cohort plus the training cohort's held-out "
        "fold (the DiffAE's; excluded from agent distillation, patient-disjoint)",
    )
    agent_crossfit: bool = Field(
        False, description="also score the agent gate on every training row out of fold: for each training fold "
        "an agent of the same recipe distilled without it scores it (threshold fixed from its own training rows). "
        "More teacher positives per decision; the champion comparison stays on the external + held-out cases",
    )
    psnr_window_hu: tuple[float, float] = (-1000.0, 200.0)

    @field_validator("noninferiority_delta", "noninferiority_delta_changed_blackbox")
    @classmethod
    def _known_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        known = {"psnr", "ssim", "decision_kept", "semantic_psnr", "auc", "f1", "direction_agreement", "flip_gain"}
        bad = sorted(set(v) - known)
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        if any(d < 0 for d in v.values()):
            raise ValueError("margins must be >= 0")
        return v

    def margins(self, same_blackbox: bool | None) -> dict[str, float]:
        """The non-inferiority margins for a comparison: ``noninferiority_delta``, with the
        ``noninferiority_delta_changed_blackbox`` entries (for metrics it also compares) when the
        two black boxes differ (``same_blackbox`` False); None (not known) keeps the base margins."""
        if same_blackbox is False:
            return self.noninferiority_delta | {m: d for m, d in self.noninferiority_delta_changed_blackbox.items()
                                                if m in self.noninferiority_delta}
        return dict(self.noninferiority_delta)


class CounterfactualConfig(StrictModel):
    """Counterfactual sweep and evaluation (paper Eq. 2, §2.3-2.4, §3.4-3.5).

    Step sizes: with ``normalized_direction`` (default) the shift is
    ``alpha * ||q|| * g / ||g||`` with ``g = dy'_i/dq``, i.e. ``alpha`` is a fraction of the
    latent norm (DESIGN.md §5a used 0.1-0.4); otherwise it is ``alpha * g``. With a
    standardising agent the same holds in its standardised coordinates ``u`` (``step_space``).
    """

    alphas: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4])
    normalized_direction: bool = True
    step_space: Literal["auto", "latent", "standardized"] = Field(
        "auto",
        description="coordinates of the step; auto = the agent's standardised u when it has one "
        "(DESIGN.md §5a: a gradient through the standardisation went off-manifold)",
    )
    agent_score: Literal["probability", "logit"] = Field(
        "probability", description="y'_i differentiated: softmax probability or raw logit"
    )
    indeterminate_band: float = Field(0.2, gt=0, le=0.5)
    target_confidence: float = Field(0.8, gt=0.5, lt=1)
    alpha_cap: float = Field(1.0, gt=0)
    search_alpha_start: float = Field(0.1, gt=0, description="first alpha of the doubling phase")
    search_max_evals: int = Field(
        12, ge=0, description="teacher evaluations per search (each one decode of the stack); 0 = no alpha search "
        "(the criteria and the gate use the sweep's fixed alphas only; the search adds the alpha at which the "
        "teacher becomes confident)",
    )
    search_rel_tol: float = Field(0.1, gt=0, lt=1, description="bisection stops at (hi-lo) <= tol*hi")
    random_control: bool = Field(True, description="also decode random directions of equal size")
    max_cases: int = Field(30, ge=1)
    swap_max_cases: int = Field(
        12, ge=1, description="cases evaluated by swap-classifier (a quick check of a new black box; "
        "its --max-cases overrides)"
    )
    case_selection: Literal["borderline", "first", "random"] = Field(
        "borderline", description="borderline: the cases whose teacher probability is nearest 0.5"
    )
    ddim_steps: int | None = Field(
        None, ge=1, description="DDIM steps of the counterfactual inversions and decodes; None = diffae.ddim_steps "
        "(filled in by ExperimentConfig), so the reconstruction gate's cached inversions are reused. Set it only "
        "to measure another count (benchmarks/cf_cost.py): the evaluation then inverts every case again",
    )
    ddim_depth: float = Field(
        1.0, gt=0, le=1, description="fraction of the DDIM path inverted and decoded (1 = to x_T; < 1 = partial "
        "inversion to t0 = depth*T, the counterfactual decoded from there); costs ceil(depth*ddim_steps) per decode",
    )
    random_control_alphas: Literal["all", "largest"] = Field(
        "all", description="alphas at which the random-direction control is decoded: every alpha of the sweep, "
        "or only the largest (its flip rate is 'any alpha', which the largest step decides in practice)",
    )
    batch_size: int = Field(64, ge=1, description="slices per DiffAE / teacher call")
    change_threshold: float = Field(
        0.05, gt=0, description="|counterfactual - reconstruction| (in [-1,1] units) counted as changed"
    )
    healthy_class: int = Field(0, ge=0, description="class index the localisation map moves toward")
    mask_threshold: float = Field(0.1, ge=0, lt=1, description="disease fraction above which a pixel is lesion")
    pointing_tolerance_px: int = Field(0, ge=0)
    baselines: list[_Baseline] = Field(default_factory=lambda: list(get_args(_Baseline)))
    gradcam_target_layer: str | None = Field(
        None, description="module name in the teacher; None = last module with a 4-D output"
    )
    ig_steps: int = Field(32, ge=2)
    occlusion_window: int = Field(4, ge=1)
    occlusion_stride: int = Field(2, ge=1)
    attribution_baseline: float = Field(-1.0, ge=-1, le=1, description="IG / occlusion baseline (-1 = air)")
    report_cases: int = Field(6, ge=0, description="cases drawn as panels in the report")
    code_swap_cases: int = Field(
        60, ge=0, description="cohort patients in the code-swap test (how much of the black box's decision "
        "follows z rather than x_T, components.counterfactual.code_swap); needs cached inversions; 0 = off",
    )
    code_swap_steps: int = Field(20, ge=1, description="DDIM steps of the code-swap decodes")
    attribution_map: bool = Field(
        True, description="counterfactual attribution map: integrated gradients of the black box from the "
        "counterfactual to the reconstruction (components.counterfactual.attribution)",
    )
    attribution_alpha: Literal["mean", "flip"] = Field(
        "flip", description="which counterfactual the attribution map attributes: 'mean' = one map per alpha of "
        "the sweep, averaged; 'flip' = per case the smallest alpha at which the black box's decision reaches the "
        "target class (the largest alpha where it never does): the minimal counterfactual, one map per case",
    )
    attribution_steps: int = Field(
        16, ge=2, description="integration steps of the attribution map per alpha (Gauss-Legendre; 16 kept the "
        "sums within ~1.5 % of the output change on the cpu-small teacher, 8 within ~3 %)",
    )
    attribution_batch_size: int = Field(
        256, ge=1, description="interpolated stacks per black-box forward/backward of the attribution map "
        "(cpu-small: 30 cases x 4 alphas x 16 steps took ~9 s at 256, ~2x longer at 64)",
    )
    shortcut_outside_share_max: float = Field(
        0.75, ge=0, le=1, description="shortcut warning when the attribution map's mean share of evidence outside "
        "the lungs exceeds this (components.counterfactual.evidence). Lungs cover about a quarter of a 32 px slice; "
        "measured on the cpu-small demo: mortality teacher 0.56-0.65, a marker-shortcut classifier 0.84",
    )
    seed: int = 0

    @property
    def ddim_step_count(self) -> int:
        """``ddim_steps`` as resolved by :class:`ExperimentConfig` (which fills None from ``diffae``).

        Raises:
            ValueError: a stand-alone config whose ``ddim_steps`` was never set or inherited.
        """
        if self.ddim_steps is None:
            raise ValueError("counterfactual.ddim_steps is unset: build the config through ExperimentConfig "
                             "(it inherits diffae.ddim_steps) or set it")
        return self.ddim_steps

    @model_validator(mode="after")
    def _alphas_valid(self) -> CounterfactualConfig:
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ValueError("alphas must be a non-empty list of positive values")
        if any(b <= a for a, b in zip(self.alphas, self.alphas[1:])):  # the flip rule and "largest" rely on it
            raise ValueError(f"alphas must be strictly increasing, got {self.alphas}")
        if self.search_alpha_start > self.alpha_cap:
            raise ValueError("search_alpha_start must not exceed alpha_cap")
        return self


class TrackingConfig(StrictModel):
    """MLflow tracking / registry names. URIs default to the project-local store."""

    mlflow_tracking_uri: str | None = None
    experiment: str = "diffexplainer"
    diffae_model_name: str = "diffexplainer-diffae"
    teacher_model_name: str = "diffexplainer-teacher"
    agent_model_name: str = "diffexplainer-agent"
    auto_promote: bool = Field(True, description="promote to champion when every gate passes (audited)")


class DriftConfig(StrictModel):
    """Drift check of the incoming training cohort against the champion's training cohort,
    in the champion DiffAE's latent space (``components.drift``), first in every training run."""

    enabled: bool = True
    alpha: float = Field(0.01, gt=0, lt=1, description="decision level of the joint permutation test")
    n_permutations: int = Field(999, ge=19, description="permutations per test (p-value floor 1/(n+1))")
    seed: int = 0
    on_drift: Literal["retrain", "agent_only", "alert"] = Field(
        "retrain",
        description="what a drifted cohort triggers: retrain = the full pipeline; agent_only = reuse the "
        "champion DiffAE (the teacher and agent are retrained on the new cohort); alert = record the drift "
        "and stop the run before any training",
    )


class ExperimentConfig(StrictModel):
    """A whole run: one section per stage."""

    preset: str = "cpu-small"
    name: str = "diffexplainer"
    workdir: str = ".diffexplainer/run"
    synth: SynthConfig = Field(default_factory=SynthConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    diffae: DiffAEConfig = Field(default_factory=DiffAEConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    gates: GateConfig = Field(default_factory=GateConfig)
    counterfactual: CounterfactualConfig = Field(default_factory=CounterfactualConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @model_validator(mode="after")
    def _gate_needs_random_control(self) -> ExperimentConfig:
        if not self.counterfactual.random_control:
            raise ValueError("counterfactual.random_control is false, but the counterfactual gate decides on the "
                             "flip-rate gain over the random direction: it would always fail")
        return self

    @model_validator(mode="after")
    def _inherit_ddim_steps(self) -> ExperimentConfig:
        """The one place ``counterfactual.ddim_steps`` (None) inherits ``diffae.ddim_steps``."""
        if self.counterfactual.ddim_steps is None:
            self.counterfactual = self.counterfactual.model_copy(update={"ddim_steps": self.diffae.ddim_steps})
        return self

    @model_validator(mode="after")
    def _sizes_agree(self) -> ExperimentConfig:
        if self.diffae.image_size != self.ingest.image_size:
            raise ValueError(
                f"diffae.image_size ({self.diffae.image_size}) must equal "
                f"ingest.image_size ({self.ingest.image_size})"
            )
        return self


def preset_path(name: str) -> Path:
    """Path of a named preset YAML; a one-line error lists the known presets."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("k8s"))
        raise UserError(f"unknown preset {name!r}; known presets: {', '.join(known)}")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping of sections")
    return data


def _format_validation_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<root>"
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = err["msg"]
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def _preset_settings(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset's settings; a preset that names ``preset:`` (e.g. gpu-64: cpu-small) is merged onto that one."""
    path = preset_path(name)
    data = _read_yaml(path)
    parent = data.pop("preset", None)
    if parent is None:
        return data
    if parent == name or parent in seen:
        raise UserError(f"{path}: presets name each other in a cycle ({' -> '.join((*seen, name, str(parent)))})")
    try:
        return deep_merge(_preset_settings(str(parent), (*seen, name)), data)
    except UserError as exc:
        if parent in seen or not str(exc).startswith("unknown preset"):
            raise
        raise UserError(f"{path}: preset: {exc}") from None


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Load and validate a run config.

    Args:
        path: a YAML file; may name ``preset:`` to start from. ``None`` uses the preset alone.
        preset: preset name used when ``path`` is None or does not name one (default cpu-small).
        overrides: nested dict merged last (used by the CLI, e.g. ``{"workdir": ...}``).

    Returns:
        The validated :class:`ExperimentConfig`.

    Raises:
        UserError: unreadable file, unknown preset, unknown key or bad value (one line).
    """
    user: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    name = str(user.get("preset") or preset or "cpu-small")
    base = _preset_settings(name)
    merged = deep_merge(base, user)
    merged["preset"] = name
    if overrides:
        merged = deep_merge(merged, overrides)
    source = str(path) if path is not None else str(preset_path(name))
    try:
        return ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        raise UserError(_format_validation_error(source, exc)) from None
