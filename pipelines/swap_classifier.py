"""The ``swap_classifier`` pipeline: a new agent for a new black box, reusing the registered DiffAE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from zenml import Model, pipeline

from components.artifacts import as_record
from components.config import ExperimentConfig
from components.errors import UserError
from pipelines.agent_tail import distil_explain_register
from pipelines.k8s import with_k8s_settings
from pipelines.step_errors import step_user_errors
from pipelines.training import ZENML_MODEL
from steps.agent.encode_latents import encode_latents_step
from steps.logs import progress_logger
from steps.swap.resolve_inputs import classifier_ref_step, dataset_ref_step, fetch_diffae_step

__all__ = ["swap_classifier_pipeline", "run_swap_classifier"]

logger = progress_logger(__name__)


@pipeline(name="swap_classifier", enable_cache=False, model=Model(name=ZENML_MODEL))
def swap_classifier_pipeline(
    config: dict, classifier: str, diffae_spec: str, out_dir: str, head_name: str | None = None
) -> None:
    """Distil, gate, explain and register an agent for ``classifier``; the DiffAE is only loaded.

    ``head_name`` names the classifier's final Linear layer when the module does not (``--head-name``).
    """
    workdir = config["workdir"]
    dataset = dataset_ref_step(path=str(Path(workdir) / "datasets" / "osic"), cohort="osic", id="dataset_osic")
    external = dataset_ref_step(path=str(Path(workdir) / "datasets" / "external"), cohort="external",
                                id="dataset_external")
    diffae = fetch_diffae_step(model_name=config["tracking"]["diffae_model_name"], spec=diffae_spec,
                               out_path=str(Path(out_dir) / "diffae.pt"), dataset=dataset)
    latents = encode_latents_step(diffae=diffae, dataset=dataset, external=external, workdir=workdir)
    teacher = classifier_ref_step(classifier=classifier, head_name=head_name)
    distil_explain_register(config, diffae, teacher, latents, dataset, external, workdir, out_dir,
                            auto_promote=False, which=("agent",))


def resolve_workdir(cfg: ExperimentConfig, diffae_spec: str, workdir_given: bool) -> Path:
    """The training run's workdir (ingested datasets, cached latents) for a swap-in.

    Without ``--workdir``: the config's workdir when it holds the ingested datasets, else the
    workdir recorded on the registered DiffAE version that will be used (tag ``workdir``).

    Raises:
        UserError: no ingested datasets found (one line naming where it looked).
    """
    wanted = Path(cfg.workdir)
    if workdir_given or (wanted / "datasets" / "external").is_dir():
        if not (wanted / "datasets" / "external").is_dir():
            raise UserError(f"{wanted}: no ingested external dataset (datasets/external); pass the training run's "
                            "--workdir (e.g. .diffexplainer/demo after `make demo`)")
        return wanted
    from registry.loaders import registered_version

    tag = registered_version(cfg.tracking.diffae_model_name, diffae_spec).tags.get("workdir")
    if tag and (Path(tag) / "datasets" / "external").is_dir():
        logger.info(f"[swap] using the workdir of the registered DiffAE ({diffae_spec}): {tag}")
        return Path(tag)
    raise UserError(f"no ingested datasets under {wanted} and the DiffAE {cfg.tracking.diffae_model_name}@{diffae_spec} "
                    "records no usable workdir: pass --workdir (the training run's, e.g. .diffexplainer/demo)")


def preflight_classifier(spec: str, workdir: Path, head_name: str | None = None) -> str:
    """Load the classifier and check its contract before any pipeline step starts.

    Args:
        spec: the classifier (path, ``module:factory`` or registry URI).
        workdir: the training run's workdir (its ingested dataset gives the input shape).
        head_name: the final Linear layer's attribute name (``--head-name``), or None.

    Returns:
        One line saying how the classifier will be read (mode, head, classes).

    Raises:
        UserError: not loadable (e.g. not a model file), a named head it does not have, the
            wrong input shape, or not two classes (the explanations move toward a healthy
            class: two-class black boxes only).
    """
    import numpy as np

    from components.blackbox import check_contract
    from registry.loaders import load_classifier

    images = np.load(workdir / "datasets" / "osic" / "images.npy", mmap_mode="r")
    bb = load_classifier(spec, head_name)
    info = check_contract(bb, channels=int(images.shape[1]), image_size=int(images.shape[-1]))
    if info["num_classes"] != 2:
        raise UserError(f"{spec}: the classifier has {info['num_classes']} output classes; DiffExplainer explains "
                        "two-class black boxes (healthy vs disease): wrap it to output [B,2] logits")
    if bb.mode == "feature":
        return f"{bb.mode} mode: head {bb.head_name!r} (Linear {info['num_features']}->2)"
    return "output mode (no features(x) with a named Linear head: the agent mimics the logits)"


def run_swap_classifier(
    cfg: ExperimentConfig, classifier: str, out_dir: str, diffae_spec: str = "champion", max_cases: int | None = None,
    workdir_given: bool = True, head_name: str | None = None,
) -> dict[str, Any]:
    """Run the pipeline; writes ``out_dir/metrics.json`` and ``out_dir/report/index.html``.

    Before the pipeline starts, the workdir is resolved (:func:`resolve_workdir`) and the
    classifier is loaded and checked (:func:`preflight_classifier`): a bad classifier is one
    ``UserError`` line, not a failed pipeline step.

    The counterfactual evaluation covers ``max_cases`` borderline external cases (default
    ``cfg.counterfactual.swap_max_cases``, fewer than the training pipeline's ``max_cases``:
    a quick check of a new black box). ``head_name`` names the classifier's final Linear
    layer (``--head-name``; needed for feature mode when the module does not carry a
    ``head_name`` attribute, e.g. a traced one).
    """
    n_cases = max_cases if max_cases is not None else cfg.counterfactual.swap_max_cases
    if n_cases < 1:
        raise UserError(f"--max-cases must be >= 1, got {n_cases}")
    cfg = cfg.model_copy(update={"counterfactual": cfg.counterfactual.model_copy(update={"max_cases": n_cases})})
    spec = classifier if "://" in classifier or ":" in classifier and not Path(classifier).exists() \
        else str(Path(classifier).resolve())
    cfg = cfg.model_copy(update={"workdir": str(resolve_workdir(cfg, diffae_spec, workdir_given))})
    mode = preflight_classifier(spec, Path(cfg.workdir), head_name)
    logger.info(f"[swap] classifier {spec}: {mode}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pipe = with_k8s_settings(swap_classifier_pipeline)
    with step_user_errors(pipe):
        run = pipe(config=cfg.model_dump(mode="json"), classifier=spec, diffae_spec=diffae_spec, out_dir=str(out),
                   head_name=head_name)
    shutil.copyfile(out / "report" / "metrics.json", out / "metrics.json")
    metrics = json.loads((out / "metrics.json").read_text())
    reg = run.steps["register_models_step"].outputs["registration"][0].load()
    return {"pipeline_run": str(run.id), "status": str(run.status), "registration": as_record(reg),
            "metrics": str(out / "metrics.json"), "report": str(out / "report" / "index.html"),
            "agent_alignment": metrics.get("agent_alignment"), "counterfactual": metrics.get("counterfactual")}
