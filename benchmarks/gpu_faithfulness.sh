#!/usr/bin/env bash
# Issue #10 on one GPU: the faithfulness benchmark with a 64 px DiffAE (configs/gpu-64.yaml).
#
# Prepare here (CPU): ingest a demo's cohorts at 64 px and pack them with the cohorts' cohort.json:
#   for c in osic external; do diffexplainer ingest --preset gpu-64 \
#     --source WD32/cohorts/$c --labels WD32/cohorts/$c/labels.csv --out WD64/datasets/$c; done
#   mkdir -p WD64/cohorts/{osic,external}; cp WD32/cohorts/osic/cohort.json WD64/cohorts/osic/ (same for external)
#   mkdir -p .gpu && tar -czf .gpu/workdir.tar.gz -C WD64 datasets cohorts
# Run on the GPU machine from the repository root (wheels the machine lacks in .whl/, if any):
#   OUT=dir bash benchmarks/gpu_faithfulness.sh
# (also OUT, WD, PRESET, CFG, CASES, THREADS, DEVICE, ARCHIVE, WHEELS, MINUTES: see their defaults below)
# The faithfulness JSON is written when the benchmark ends: keep the call's limit above the ~7 min it is
# estimated to take on an H200 (MINUTES shortens the DiffAE's training).
# It trains the DiffAE (benchmarks/diffae_workdir.py), then runs benchmarks/faithfulness.py with the
# DiffAE's inversions and decodes on the GPU (black boxes trained on the GPU, explained on the CPU).
# OUT receives both JSON results, their logs, F's attribution figure and the saved maps (arrays.tar.gz).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-faithfulness}
WD=${WD:-/tmp/gpu64-workdir}
PRESET=${PRESET:-gpu-64}
CFG=${CFG:-}
CASES=${CASES:-30}
THREADS=${THREADS:-16}
DEVICE=${DEVICE:-cuda}
ARCHIVE=${ARCHIVE:-.gpu/workdir.tar.gz}
mkdir -p "$OUT" "$WD"
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
tar -xzf "$ARCHIVE" -C "$WD" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" || echo "no nvidia-smi"
export PYTHONUNBUFFERED=1
start=$(date +%s)
python3 benchmarks/diffae_workdir.py --workdir "$WD" --preset "$PRESET" ${CFG:+--config "$CFG"} --device "$DEVICE" --threads "$THREADS" \
  ${MINUTES:+--minutes "$MINUTES"} > "$OUT/diffae_workdir.json" 2> >(tee "$OUT/diffae_workdir.log" >&2) || { echo "diffae_workdir FAILED"; exit 1; }
echo "diffae_workdir: $(( $(date +%s) - start )) s"
python3 benchmarks/faithfulness.py --workdir "$WD" --preset "$PRESET" ${CFG:+--config "$CFG"} --device "$DEVICE" --threads "$THREADS" \
  --cases "$CASES" --save-arrays > "$OUT/faithfulness_stdout.json" 2> >(tee "$OUT/faithfulness.log" >&2) \
  && status=0 || { status=1; echo "faithfulness FAILED"; }
echo "total: $(( $(date +%s) - start )) s"
if [ "$status" = 0 ]; then
  cp "$WD/faithfulness/faithfulness.json" "$WD/faithfulness/attribution_F.png" "$OUT/"
  (cd "$WD/faithfulness" && tar -czf "$OUT/arrays.tar.gz" arrays/F/maps.npz arrays/M/maps.npz arrays/R/maps.npz \
    arrays/cases.npz)
fi
ls -la "$OUT"
exit "$status"
