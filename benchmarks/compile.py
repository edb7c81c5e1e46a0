"""Offline compilation time of both production orchestrators (issue 14's "< 60 s" target), one JSON line.

Runs what ``diffexplainer compile`` runs for the paper preset and the production profile, each
``--repeats`` times in this process, side by side: the Kubernetes pod manifests
(:func:`pipelines.compile.compile_kubernetes`) and the KFP v2 pipeline spec compiled through ZenML
(:func:`pipelines.compile.compile_kubeflow`, a child process on a throw-away ZenML store; it
needs the ``kubeflow`` extra). The first Kubernetes compile pays the imports; every Kubeflow
compile pays a fresh interpreter. No cluster is contacted.

Last line: ``{"kubernetes_s": [...], "kubeflow_s": [...], "target_s": 60, "met": bool, ...}``
(``met``: every compile of both under the target).

Usage: ``python benchmarks/compile.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.config import load_config  # noqa: E402
from pipelines.compile import compile_kubeflow, compile_kubernetes  # noqa: E402

TARGET_S = 60.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "paper.yaml"))
    ap.add_argument("--k8s-settings", default=str(ROOT / "configs" / "k8s-prod.yaml"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-kubeflow", action="store_true", help="without the kubeflow extra")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    times: dict[str, list[float]] = {"kubernetes": [], "kubeflow": []}
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
        for k in range(args.repeats):
            for orchestrator in ("kubernetes", "kubeflow"):
                if orchestrator == "kubeflow" and args.skip_kubeflow:
                    continue
                out = Path(tmp) / f"{orchestrator}-{k}"
                t0 = time.perf_counter()
                if orchestrator == "kubernetes":
                    compile_kubernetes(cfg, args.k8s_settings, out)
                else:
                    compile_kubeflow(cfg, args.k8s_settings, out)
                times[orchestrator].append(round(time.perf_counter() - t0, 2))
                print(f"[compile] {orchestrator} #{k + 1}: {times[orchestrator][-1]:.1f} s", file=sys.stderr, flush=True)
    every = times["kubernetes"] + times["kubeflow"]
    print(json.dumps({"benchmark": "compile", "config": args.config, "k8s_settings": args.k8s_settings,
                      "kubernetes_s": times["kubernetes"], "kubeflow_s": times["kubeflow"], "target_s": TARGET_S,
                      "met": bool(every) and max(every) < TARGET_S, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
