"""``diffexplainer`` command line.

Every user error ends with one line ``error: <reason>`` on stderr and exit status 2;
an unexpected failure prints its traceback and exits 1. Heavy imports (torch, ZenML,
MLflow) happen inside the command that needs them, after the project-local state folder
is configured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from components.errors import UserError
from pipelines.env import configure_local_state

__all__ = ["main", "build_parser"]

#: The Kubernetes settings file `compile` and `k8s preflight` read unless told otherwise.
_DEFAULT_K8S_SETTINGS = str(Path(__file__).resolve().parent.parent / "configs" / "k8s-prod.yaml")


#: What ``--head-name`` does and which classifier formats can use it (see components/blackbox.py).
_HEAD_NAME_HELP = (
    "attribute name of the classifier's final nn.Linear layer; asks for feature mode (the paper's), which "
    "also needs a features(x) method. Default: the module's own head_name attribute, if any, else output "
    "mode. torch.save'd and module:factory classifiers keep features(); torch.jit.script keeps it when "
    "forward calls it or it is @torch.jit.export-ed; torch.jit.trace keeps it only when it is "
    "@torch.jit.export-ed or traced too (torch.jit.trace_module), else the classifier runs in output mode"
)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_synth(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.config, preset=args.preset)
    from components.data.synth import write_cohort

    n = args.patients or (cfg.synth.osic_patients if args.cohort == "osic" else cfg.synth.external_patients)
    seed = cfg.synth.seed if args.seed is None else args.seed
    marker = {k: v for k, v in (("marker_fraction", args.marker_fraction),
                                ("marker_label_association", args.marker_association)) if v is not None}
    try:
        synth_cfg = cfg.synth.model_validate({**cfg.synth.model_dump(), **marker}) if marker else cfg.synth
    except ValueError:  # pydantic's ValidationError
        raise UserError("--marker-fraction and --marker-association must lie in [0, 1]") from None
    summary = write_cohort(Path(args.out), args.cohort, n, seed, synth_cfg, progress=_progress, overwrite=args.overwrite)
    print(
        f"wrote {summary.n_patients} patients ({summary.n_positive} positive), {summary.n_files} files, "
        f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s to {summary.root}"
    )
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.config, preset=args.preset)
    from components.data.ingest import ingest

    result = ingest(args.source, Path(args.labels), Path(args.out), cfg.ingest, progress=_progress)
    print(
        f"ingested {result.n_ok} patients ok, {result.n_quarantined} quarantined "
        f"({result.n_files} files); hash {result.dataset_hash}; outputs in {result.out}"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from components.config import load_config
    from pipelines.training import run_training

    overrides = {"workdir": args.workdir} if args.workdir else None
    cfg = load_config(args.config, preset=args.preset, overrides=overrides)
    summary = run_training(
        cfg,
        train_source=args.source,
        train_labels=args.labels,
        external_source=args.external_source,
        external_labels=args.external_labels,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from components.config import load_config
    from pipelines.demo import run_demo

    cfg = load_config(args.config, preset=args.preset, overrides={"workdir": args.workdir})
    t0 = time.time()
    summary = run_demo(cfg, from_scratch=args.from_scratch, progress=_progress)
    print(json.dumps(summary, indent=2, default=str))
    print(f"demo finished in {time.time() - t0:.0f} s")
    if summary.get("report"):
        print(f"report: {summary['report']}")
    return 0


def _cmd_train_teacher(args: argparse.Namespace) -> int:
    from components.config import load_config

    overrides = {"teacher": {"arch": args.arch}} if args.arch else None
    cfg = load_config(args.config, preset=args.preset, overrides=overrides)
    import numpy as np
    import torch

    from components.data.dataset import load_dataset
    from components.training.train_teacher import train_teacher

    ds = load_dataset(args.dataset)
    model, metrics = train_teacher(
        np.asarray(ds.images), ds.labels, ds.folds, cfg.teacher,
        progress=lambda frac, msg: _progress(f"[teacher {100 * frac:5.1f}%] {msg}"),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, out)
    cv = metrics["cv_mean"]
    print(f"saved {cfg.teacher.arch} classifier to {out} (CV AUC {cv.get('auc', float('nan')):.3f}, "
          f"{metrics.get('seconds', 0):.0f} s)")
    return 0


def _cmd_swap(args: argparse.Namespace) -> int:
    from components.config import load_config

    overrides = {"workdir": args.workdir} if args.workdir else None
    cfg = load_config(args.config, preset=args.preset, overrides=overrides)
    from pipelines.swap_classifier import run_swap_classifier

    t0 = time.time()
    summary = run_swap_classifier(cfg, args.classifier, args.out, diffae_spec=args.diffae_version,
                                  max_cases=args.max_cases, workdir_given=bool(args.workdir),
                                  head_name=args.head_name)
    print(json.dumps(summary, indent=2, default=str))
    print(f"swap-classifier finished in {time.time() - t0:.0f} s; report: {summary['report']}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from components.config import load_config

    overrides = {"ingest": {"require_chest": False}} if args.lenient else None
    cfg = load_config(args.config, preset=args.preset, overrides=overrides)
    from pipelines.explain import run_explain

    result = run_explain(cfg, args.patient, args.out, classifier=args.classifier, alias=args.model_alias,
                         head_name=args.head_name)
    print(f"explained {result['patient']} with DiffAE v{result['diffae_version']} / agent v{result['agent_version']}; "
          f"outputs in {result['out']}")
    print(f"black box: {result['blackbox']}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.config, preset=args.preset)
    from pipelines.schedule import schedule_training

    print(schedule_training(cfg, args.cron, args.source, args.labels, args.external_source, args.external_labels,
                            orchestrator=args.orchestrator))
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.config, preset=args.preset)
    from pipelines.drift import run_drift

    print(json.dumps(run_drift(cfg, args.reference, args.current, alias=args.model_alias, diffae_path=args.diffae)))
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.config, preset=args.preset)
    from pipelines.compile import PLACEHOLDER_INPUTS, compile_kubeflow, compile_kubernetes

    given = {"train_source": args.source, "train_labels": args.labels, "external_source": args.external_source,
             "external_labels": args.external_labels}
    inputs = {k: v or PLACEHOLDER_INPUTS[k] for k, v in given.items()}
    if args.orchestrator == "kubeflow":
        out = compile_kubeflow(cfg, args.k8s_settings, args.out, inputs, cron=args.cron)
    elif args.cron:
        raise UserError("--cron with --orchestrator kubernetes: the CronJob is created by `schedule` on the stack")
    else:
        out = compile_kubernetes(cfg, args.k8s_settings, args.out, inputs)
    print(json.dumps(out))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from registry.mlflow_registry import promote

    rec = promote(args.model, args.version, args.reason, actor=args.actor)
    print(f"promoted {rec.model} v{rec.version} to champion (previous: {rec.previous_champion}); audited at {rec.timestamp}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from registry.mlflow_registry import rollback

    rec = rollback(args.model, args.reason, actor=args.actor)
    print(f"rolled {rec.model} back to v{rec.version} (was v{rec.previous_champion}); audited at {rec.timestamp}")
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    from registry.lineage import lineage

    print(json.dumps(lineage(args.model), indent=2, default=str))
    return 0


def _cmd_k8s_preflight(args: argparse.Namespace) -> int:
    from pipelines.k8s import load_k8s_settings
    from pipelines.k8s_preflight import format_report, load_kube_client, run_preflight

    settings = load_k8s_settings(args.config)
    api, who = load_kube_client(args.kubeconfig, args.context)
    results = run_preflight(settings, api, who, as_service_account=args.as_service_account)
    print(format_report(results, Path(args.config).name))
    return 0 if all(r.ok for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per CLI contract entry (DESIGN.md §3)."""
    parser = argparse.ArgumentParser(prog="diffexplainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=fn)
        p.add_argument("--config", help="YAML config (may name a preset to start from)")
        p.add_argument("--preset", default="cpu-small", help="preset when no config names one")
        return p

    p = add("demo", _cmd_demo, "synthesise cohorts, run the full pipeline, print the report path")
    p.add_argument("--workdir", default=".diffexplainer/demo")
    p.add_argument("--from-scratch", action="store_true", help="ignore cached/shipped checkpoints")

    p = add("synth", _cmd_synth, "write a synthetic OSIC-layout cohort")
    p.add_argument("--out", required=True)
    p.add_argument("--cohort", choices=["osic", "external"], default="osic")
    p.add_argument("--patients", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--marker-fraction", type=float, default=None,
                   help="share of patients with the planted shortcut marker (default: synth.marker_fraction)")
    p.add_argument("--marker-association", type=float, default=None,
                   help="0 = marker independent of the label, 1 = marker iff positive (default: synth.marker_label_association)")

    p = add("ingest", _cmd_ingest, "validate and ingest a DICOM cohort (folder or s3://)")
    p.add_argument("--source", required=True, help="DIR or s3://bucket/prefix")
    p.add_argument("--labels", required=True, help="labels.csv (Patient,mortality_1y)")
    p.add_argument("--out", required=True)

    p = add("train", _cmd_train, "run the training pipeline")
    p.add_argument("--source", required=True, help="training cohort: DIR or s3://bucket/prefix")
    p.add_argument("--labels", required=True)
    p.add_argument("--external-source", required=True)
    p.add_argument("--external-labels", required=True)
    p.add_argument("--workdir", default=None)

    p = add("train-teacher", _cmd_train_teacher, "train a classifier on an ingested dataset (e.g. a second black box)")
    p.add_argument("--dataset", required=True, help="an ingest --out folder")
    p.add_argument("--arch", choices=["densenet121", "densenet-small", "resnet"], default=None)
    p.add_argument("--out", required=True, help="file for the torch.save'd classifier")

    p = add("swap-classifier", _cmd_swap, "new agent for a new black box, reusing the registered DiffAE")
    p.add_argument("--classifier", required=True, help="PATH (TorchScript / torch.save), models:/NAME@ALIAS, module:factory")
    p.add_argument("--head-name", default=None, metavar="NAME", help=_HEAD_NAME_HELP)
    p.add_argument("--out", required=True)
    p.add_argument("--diffae-version", default="champion", help="alias, version number or 'latest'")
    p.add_argument("--workdir", default=None, help="the training run's workdir (datasets, cached latents)")
    p.add_argument("--max-cases", type=int, default=None,
                   help="borderline external cases in the counterfactual evaluation (default: config "
                        "counterfactual.swap_max_cases)")

    p = add("explain", _cmd_explain, "counterfactuals, heatmaps and scores for one patient folder")
    p.add_argument("--patient", required=True, help="one patient's DICOM folder")
    p.add_argument("--out", required=True)
    p.add_argument("--model-alias", default="champion", help="alias, version number or 'latest'")
    p.add_argument("--classifier", default=None, help="explain this black box with its swap-classifier agent")
    p.add_argument("--head-name", default=None, metavar="NAME", help=_HEAD_NAME_HELP + " (with --classifier)")
    p.add_argument("--lenient", action="store_true",
                   help="accept a CT series that fails the chest checks (HU sanity, lung extent); noted in the output")

    p = add("schedule", _cmd_schedule, "scheduled retraining (a Kubernetes CronJob or a Kubeflow recurring run)")
    p.add_argument("--cron", required=True)
    p.add_argument("--orchestrator", choices=["kubernetes", "kubeflow"], default=None,
                   help="the orchestrator the active ZenML stack must have (default: whichever it has)")
    p.add_argument("--source", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--external-source", required=True)
    p.add_argument("--external-labels", required=True)

    p = add("drift", _cmd_drift, "two-sample test of two ingested cohorts in DiffAE latent space (one JSON object)")
    p.add_argument("--reference", required=True, help="ingested dataset folder (ingest --out) of the training cohort")
    p.add_argument("--current", required=True, help="ingested dataset folder of the incoming cohort")
    p.add_argument("--model-alias", default="champion", help="registered DiffAE alias, version number or 'latest'")
    p.add_argument("--diffae", default=None, help="a DiffAE checkpoint file instead of the registry")

    p = add("compile", _cmd_compile, "write what would be submitted (KFP v2 spec / pod manifests), offline")
    p.add_argument("--orchestrator", required=True, choices=["kubeflow", "kubernetes"])
    p.add_argument("--out", required=True)
    p.add_argument("--k8s-settings", default=_DEFAULT_K8S_SETTINGS,
                   help="configs/k8s-*.yaml with the per-step pod profiles (default: k8s-prod)")
    p.add_argument("--cron", default=None, help="kubeflow: also write the recurring run that `schedule` would create")
    for flag in ("--source", "--labels", "--external-source", "--external-labels"):
        p.add_argument(flag, default=None, help="pipeline input (default: a placeholder s3:// path)")

    k8s = sub.add_parser("k8s", help="Kubernetes helpers (see `k8s preflight`)")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", required=True)
    p = k8s_sub.add_parser("preflight", help="check the cluster before submitting a GPU run: one line per check; "
                                             "exit 0 all ok, 1 any FAIL, 2 user error")
    p.set_defaults(func=_cmd_k8s_preflight)
    p.add_argument("--config", default=_DEFAULT_K8S_SETTINGS, help="configs/k8s-*.yaml (default: k8s-prod)")
    p.add_argument("--context", default=None, help="kube context (default: the kubeconfig's current context)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--as-service-account", action="store_true",
                   help="RBAC review as the config's service account (impersonation) instead of your own identity")

    p = add("promote", _cmd_promote, "audited promotion of a registered version to champion")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, help="version number or @alias")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default=None, help="who promotes (default: $DIFFEXPLAINER_ACTOR or the login)")

    p = add("rollback", _cmd_rollback, "audited return of the champion alias to the previous champion")
    p.add_argument("--model", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default=None)

    p = add("lineage", _cmd_lineage, "dataset hash -> runs -> gates -> registration -> promotions")
    p.add_argument("model", help="NAME, NAME@alias or NAME/version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffexplainer`` console script."""
    configure_local_state()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
