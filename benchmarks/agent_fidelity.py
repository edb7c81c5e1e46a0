"""Agent fidelity across teacher trainings: how reliably does the L1 agent pass its gate?

The agent gate (one-sided 95 % lower bounds of AUC and F1 against the teacher's decisions, floors
in ``gates``; here on the external cohort alone, without the held-out fold) is measured once per
run, against one trained teacher. This script asks how much of the run-to-run spread comes
from the teacher: on the DiffAE latents a finished ``make demo`` cached (``WORKDIR/latents``,
``WORKDIR/datasets``), it trains ``--teachers`` teachers with the
preset's teacher section and seeds 0..K-1, distils the configured agent for each exactly as
the pipeline does (same augmentation latents, ridge start, fine-tuning), and scores it with
the pipeline's alignment report. The DiffAE and the latents stay fixed.

Besides the gate metrics it prints ``r``: the Pearson correlation between the agent's and the
teacher's logit difference ``l1 - l0`` on the external cohort (a threshold-free fidelity
measure), ``teacher_near_boundary``: the share of external cases with ``|l1 - l0| < 1``, and
the code-swap test (:mod:`components.counterfactual.code_swap`) on the first ``--swap-cases``
external patients: ``z_share`` of the teacher's decision that follows the semantic code
rather than the stochastic code ``x_T`` (what neither the agent nor a counterfactual can move).

Prints one JSON line: per teacher, and mean / min / max of each metric plus the share of
teachers whose agent passes the gate. About 95 s per teacher on 2 CPU cores (cpu-small),
~15 s of it the code-swap decodes.

Usage: ``python benchmarks/agent_fidelity.py [--workdir .diffexplainer/demo] [--teachers 4]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.blackbox import from_module  # noqa: E402
from components.config import load_config  # noqa: E402
from components.counterfactual.code_swap import decision_swap  # noqa: E402
from components.data.dataset import load_dataset  # noqa: E402
from components.errors import UserError  # noqa: E402
from components.gates import agent_evidence  # noqa: E402
from components.models.diffae import load_diffae  # noqa: E402
from components.training.agent_suite import blackbox_targets  # noqa: E402
from components.training.distill_agent import agent_scores, alignment_report, distill_agent  # noqa: E402
from components.training.latents import augment_stacks  # noqa: E402
from components.training.train_teacher import evaluate_teacher, train_teacher  # noqa: E402
from registry.gate_decision import decide  # noqa: E402


def _load_latents(workdir: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    folder = workdir / "latents"
    if not (folder / "train.npy").is_file():
        raise UserError(f"{folder}/train.npy not found: run `make demo` (or the training pipeline) first")
    aug = {n: np.load(folder / f"train_{n}.npy") for n in names if (folder / f"train_{n}.npy").is_file()}
    return np.load(folder / "train.npy"), aug, np.load(folder / "external.npy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=".diffexplainer/demo")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--teachers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--swap-cases", type=int, default=60, help="external patients in the code-swap test (0: skip)")
    ap.add_argument("--swap-steps", type=int, default=20, help="DDIM steps for the code-swap decodes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(None, args.preset, {})
    workdir = Path(args.workdir)
    ds, ext = load_dataset(workdir / "datasets" / "osic"), load_dataset(workdir / "datasets" / "external")
    q, q_aug, q_ext = _load_latents(workdir, list(cfg.agent.augmentations))
    x, x_ext = np.array(ds.images, np.float32), np.array(ext.images, np.float32)
    gate_auc, gate_f1 = cfg.gates.agent_auc_min, cfg.gates.agent_f1_min  # floors on lower bounds (issue 11)
    inversions = workdir / "reconstructions" / "external.npz"
    swap = None
    if args.swap_cases > 0 and inversions.is_file():
        with np.load(inversions) as z:
            swap = {k: z[k][: args.swap_cases] for k in ("recon", "x_T", "q")}
        diffae = load_diffae(workdir / "models" / "diffae.pt").eval()
    rows = []
    for seed in range(args.teachers):
        start = time.monotonic()
        model, _ = train_teacher(x, ds.labels, ds.folds, cfg.teacher.model_copy(update={"seed": seed}))
        teacher_s = time.monotonic() - start
        bb = from_module(model, source=f"teacher seed {seed}")
        t = blackbox_targets(bb, x)
        names = list(q_aug)
        per_aug = [blackbox_targets(bb, augment_stacks(x, n)) for n in names]
        t_aug = {k: np.concatenate([p[k] for p in per_aug]) for k in ("logits", "features")} if names else None
        agent, info = distill_agent(q, t, bb.head, cfg.agent, q_aug=np.concatenate([q_aug[n] for n in names]) if names else None,
                                    targets_aug=t_aug)
        ext_logits = blackbox_targets(bb, x_ext)["logits"]
        report = alignment_report(agent, q_ext, ext_logits)
        with torch.no_grad():
            a_logits = agent(torch.as_tensor(q_ext, dtype=torch.float32)).numpy()
        d_t, d_a = ext_logits[:, 1] - ext_logits[:, 0], a_logits[:, 1] - a_logits[:, 0]
        row = {
            "seed": seed,
            "teacher_external_auc": evaluate_teacher(model, x_ext, ext.labels)["auc"],
            "agent_auc": report["auc"],
            "agent_f1": report["f1"],
            "agent_kl": report["kl"],
            "teacher_positives": int(report["teacher_positives"]),
            "r": float(np.corrcoef(d_a, d_t)[0, 1]),
            "teacher_near_boundary": float(np.mean(np.abs(d_t) < 1.0)),
            "z_share": None,
            "ridge_alpha": info["ridge_alpha"],
            "fine_tune_epochs": info["epochs"],
            # the pipeline's gate: bootstrap lower bounds on the external cohort, F1 at the agent's fixed threshold
            "passes_gate": decide(agent_evidence((ext_logits.argmax(1) == 1).astype(int), agent_scores(agent, q_ext),
                                                 info["decision_threshold"], None, cfg.gates)).passed,
            "teacher_s": round(teacher_s, 1),
        }
        if swap is not None:
            row["z_share"] = decision_swap(diffae, bb, swap["recon"], swap["x_T"], swap["q"], args.swap_steps)["z_share"]
        rows.append(row)
        print(f"[agent-fidelity] teacher seed {seed}: agent AUC {row['agent_auc']:.3f} F1 {row['agent_f1']:.3f} "
              f"r {row['r']:.3f} z_share {row['z_share']} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    keys = ["teacher_external_auc", "agent_auc", "agent_f1", "r", "teacher_near_boundary"]
    keys += ["z_share"] if swap is not None else []
    summary: dict[str, Any] = {
        k: {"mean": float(np.mean([r[k] for r in rows])), "min": float(np.min([r[k] for r in rows])),
            "max": float(np.max([r[k] for r in rows]))} for k in keys}
    summary["gate_pass_rate"] = float(np.mean([r["passes_gate"] for r in rows]))
    print(json.dumps({"benchmark": "agent_fidelity", "preset": args.preset, "workdir": str(workdir),
                      "n_train": int(len(q)), "n_external": int(len(q_ext)), "gate": {"auc": gate_auc, "f1": gate_f1},
                      "teachers": rows, "summary": summary}))


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")
