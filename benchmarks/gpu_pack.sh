#!/usr/bin/env bash
# Prepare benchmarks/gpu_faithfulness.sh's inputs here, on the CPU, from a finished 32 px demo:
#   bash benchmarks/gpu_pack.sh [DEMO_WORKDIR]      (default .diffexplainer/demo; run from the repository root)
# 1. ingests the demo's synthetic cohorts again at 64 px (--preset gpu-64) into $PACK_WD (default /tmp/gpu64-pack);
# 2. packs datasets/ and the cohorts' cohort.json (the interventions re-render from them) into .gpu/workdir.tar.gz;
# 3. downloads, for the GPU image's Python 3.12, the wheels it lacks (pydantic and its three dependencies, MONAI,
#    captum, pydicom: the versions installed here) into .whl/.
# WHEELS=0 skips step 3. Both folders are ignored by git (.git/info/exclude) and travel with `run`'s carry: [".whl", ".gpu"].
set -euo pipefail
DEMO=${1:-.diffexplainer/demo}
PACK_WD=${PACK_WD:-/tmp/gpu64-pack}
PY=${PY:-.venv/bin/python}
DX=${DX:-.venv/bin/diffexplainer}
for c in osic external; do
  [ -f "$DEMO/cohorts/$c/cohort.json" ] || { echo "error: $DEMO/cohorts/$c/cohort.json not found: run make demo first" >&2; exit 2; }
done
rm -rf "$PACK_WD" && mkdir -p "$PACK_WD/cohorts/osic" "$PACK_WD/cohorts/external"
for c in osic external; do
  "$DX" ingest --preset gpu-64 --source "$DEMO/cohorts/$c" --labels "$DEMO/cohorts/$c/labels.csv" \
    --out "$PACK_WD/datasets/$c" | tail -1
  cp "$DEMO/cohorts/$c/cohort.json" "$PACK_WD/cohorts/$c/"
done
mkdir -p .gpu .whl
if [ -d .git/info ]; then
  for d in /.gpu/ /.whl/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
fi
tar -czf .gpu/workdir.tar.gz -C "$PACK_WD" datasets cohorts
if [ "${WHEELS:-1}" != 0 ]; then
  pins=$("$PY" -m pip list --format=freeze 2>/dev/null | grep -iE '^(pydantic|pydantic_core|annotated-types|typing-inspection|monai|captum|pydicom)==')
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
fi
du -sh .gpu .whl
