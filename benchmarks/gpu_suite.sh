#!/usr/bin/env bash
# The prepared GPU check: run from the project root on a CUDA machine; results under $OUT.
#   ../shared/gpu/fetch-wheels.sh        (here, once: Hydra/imbalanced-learn wheels into .whl/)
#   device tool: run "bash benchmarks/gpu_suite.sh" with carry [".whl"], timeout_s ~ 600
# On the H100 of 2026-11-27 the steps took 23/15/59/60/138/78 s (docs/performance.md); the
# default job is launch-bound there (138 s, slower than the 2-core CPU's 94 s).
# Each step is bounded by `timeout` (and BUDGET for all of them, which should stay ~60 s under
# the device call's timeout_s) and writes its own files into $WORK; after each step the small
# files are packed into $OUT/results.tar.gz (the device tool returns at most 8 files), so a
# late failure or a cut-off keeps the earlier results. The tables are printed to stdout.
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_suite.sh   checks the script itself on a CPU in ~2 min.
set -u
OUT=${OUT:-/tmp/gpu_out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
BUDGET=${BUDGET:-540}  # seconds for all steps together; a step gets at most what is left
WORK=$(mktemp -d)
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HYDRA_FULL_ERROR=1 PYTHONUNBUFFERED=1
pack() {  # copy what exists so far into $OUT: a cut-off run still returns its finished steps
  cp "$WORK/laplacian.json" "$WORK/memory_phases.json" "$OUT/" 2>/dev/null
  # only the small files: the runs' point sets and checkpoints would pass the 16 MB return limit
  (cd "$WORK" && find . -type f \( -name '*.txt' -o -name '*.json' -o -name '*.yaml' \
    -o -name '*.csv' -o -name '*.md' -o -name '*.log' \) -print0 \
    | tar -czf "$OUT/results.tar.gz.tmp" --null -T - && mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz")
}
trap 'pack; rm -rf "$WORK"' EXIT
step() {  # step NAME SECONDS COMMAND...: run, log to $WORK/NAME.txt, print how it ended
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS left=$((BUDGET - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then echo "== $name: skipped, budget spent" | tee -a "$WORK/steps.txt"; return; fi
  timeout -k 10 "$limit" "$@" > "$WORK/$name.txt" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s" | tee -a "$WORK/steps.txt"
  pack
}
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" \
  | tee "$WORK/torch.txt"

if [ "$QUICK" = 1 ]; then
  DIMS_LAP="10"; N_LAP=500; DIMS_MEM="10 50"; N_MEM=500; DENSE=5000
  ELL="n_points=500 optimizer.pretrain_steps=20 optimizer.lbfgs_steps=5 rounds=1"
  BUR="optimizer.pretrain_steps=50 optimizer.lbfgs_steps=20 rounds=2 n_points=500"
  MVD="pde.dim=10 n_points=500"
else
  DIMS_LAP="10 100"; N_LAP=5000; DIMS_MEM="10 50 100 200 1000"; N_MEM=5000; DENSE=100000
  ELL="n_points=5000 optimizer.pretrain_steps=1000 optimizer.lbfgs_steps=300 rounds=3"
  BUR=""
  MVD=""
fi

# 1. GPU tests (skipped where there is no CUDA)
step pytest_gpu 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests
# 2. one training step per Laplacian method, d = 10 and 100, MLP 128x4 (SPEC §7 anchors)
step laplacian 170 python3 benchmarks/laplacian.py --dims $DIMS_LAP --n-points $N_LAP \
  --device "$DEVICE" --repeats 5 --warmup 2 --json "$WORK/laplacian.json" \
  --methods ${LAP_METHODS:-autograd forward forward+compile forward+cudagraphs func hutchinson}
# 3. peak memory per phase, RSmote vs RAD (unchunked and chunked), up to d = 1000
step memory_phases 120 python3 benchmarks/memory_phases.py --dims $DIMS_MEM --n-points $N_MEM \
  --n-dense $DENSE --device "$DEVICE" --json "$WORK/memory_phases.json"
# 4. a whole RSmote run of the elliptic problem at d = 100, N = 5000, MLP 128x4 (issue 6 target)
step elliptic_d100 90 python3 run.py pde=elliptic pde.dim=100 model.width=128 model.depth=4 \
  device=$DEVICE progress=false $ELL hydra.run.dir="$WORK/elliptic_d100"
# 5. the default job (Burgers, RSmote) on the GPU
step default_run 160 python3 run.py device=$DEVICE progress=false $BUR \
  hydra.run.dir="$WORK/default_run"
# 6. the paper's memory setup (autograd Laplacian, RAD 100k unchunked vs RSmote), short budget
step memory_vs_dim 100 python3 run.py +experiment=memory_vs_dim device=$DEVICE \
  optimizer.pretrain_steps=20 optimizer.adam_steps=0 optimizer.lbfgs_steps=10 rounds=1 $MVD \
  hydra.sweep.dir="$WORK/memory_vs_dim"

find "$WORK" -name checkpoint.pt -delete
echo "### laplacian"; grep -v '^{' "$WORK/laplacian.txt" | tail -30
echo "### memory_phases"; grep -v '^{' "$WORK/memory_phases.txt" | tail -25
echo "### elliptic_d100"; tail -3 "$WORK/elliptic_d100.txt"
python3 - "$WORK" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).rglob("metrics.json")):
    m = json.loads(path.read_text())
    keys = ("status", "sampler", "l2_rel_error", "wall_time_s", "peak_gpu_mem_mb",
            "peak_gpu_mem_mb_train", "peak_gpu_mem_mb_sampling", "peak_cpu_rss_mb", "device")
    print(path.parent.relative_to(sys.argv[1]), {k: m.get(k) for k in keys})
EOF
cat "$WORK/steps.txt"; tail -5 "$WORK/pytest_gpu.txt"
echo done > "$OUT/DONE"
