#!/usr/bin/env bash
# The prepared GPU check: run from the project root on a CUDA machine; results under $OUT.
#   bash benchmarks/fetch_wheels.sh     (where PyPI is reachable, once: the Hydra and
#                                        imbalanced-learn wheels into .whl/, copied along
#                                        with the project when the GPU machine has no index)
#   bash benchmarks/gpu_suite.sh        (on the GPU machine; give it ~600 s)
# STEPS picks the steps (default: the throughput steps, "tests throughput runs concurrency
# reference"); "laplacian memory_phases elliptic_d100 memory_vs_dim" are the memory and
# Laplacian steps whose H100 results are in docs/results.md; "ensemble projection
# ensemble_table" are the batched-ensemble steps, not measured on a GPU yet, whose targets are
# S up to 128 per member against a single run, a vmap L-BFGS iteration whose kernels do not
# grow with S, and one burgers_table configuration at budget=paper as one batched job (run
# STEPS="tests ensemble projection ensemble_table" first on a GPU machine).
# Each step is bounded by `timeout` (and BUDGET for all of them, which should stay ~60 s under
# the time the GPU machine is available) and writes its own files into $WORK; after each step the small
# files are packed into $OUT/results.tar.gz, so a late failure or a cut-off keeps the earlier
# results. The tables are printed to stdout.
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_suite.sh   checks the script itself on a CPU.
set -u
OUT=${OUT:-/tmp/gpu_out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
BUDGET=${BUDGET:-540}  # seconds for all steps together; a step gets at most what is left
STEPS=${STEPS:-tests throughput runs concurrency reference}
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
  cp "$WORK"/*.json "$OUT/" 2>/dev/null
  # only the small files: the runs' point sets and checkpoints would pass the 16 MB return limit
  (cd "$WORK" && find . -type f \( -name '*.txt' -o -name '*.json' -o -name '*.yaml' \
    -o -name '*.csv' -o -name '*.md' -o -name '*.log' \) -print0 \
    | tar -czf "$OUT/results.tar.gz.tmp" --null -T - && mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz")
}
trap 'pack; rm -rf "$WORK"' EXIT
step() {  # step NAME SECONDS COMMAND...: run, log to $WORK/NAME.txt, print how it ended
  local name=$1 limit=$2; shift 2
  case " $STEPS " in *" $name "*) ;; *) return ;; esac
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
  MVD="pde.dim=10 n_points=500"
  # a small default job: the throughput steps check their wiring, not the numbers
  TP="--adam 20 --lbfgs 20 --warmup 5"
  JOB="optimizer.pretrain_steps=100 optimizer.lbfgs_steps=50 rounds=2 n_points=500"
  REF="optimizer.pretrain_steps=200 optimizer.adam_steps=20 optimizer.lbfgs_steps=20"
  K=2
else
  DIMS_LAP="10 100"; N_LAP=5000; DIMS_MEM="10 50 100 200 1000"; N_MEM=5000; DENSE=100000
  ELL="n_points=5000 optimizer.pretrain_steps=1000 optimizer.lbfgs_steps=300 rounds=3"
  MVD=""
  TP="--adam 300 --lbfgs 300 --warmup 20"
  JOB=""
  REF=""
  K=${K:-8}
fi
FAST="laplacian=forward optimizer.lbfgs_impl=device optimizer.cuda_graphs=true"

# 1. GPU tests (skipped where there is no CUDA), the CUDA-graph checks among them
step tests 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests
# 2. per-phase throughput of the default job: autograd + torch L-BFGS (the old path), forward
#    jets, the device L-BFGS, and both replayed as CUDA graphs
step throughput 120 python3 benchmarks/throughput.py --device "$DEVICE" $TP \
  --variants baseline,forward,device,graphs --json "$WORK/throughput.json" -- $JOB
# 3. whole default jobs: time and final error, fast path against the eager device path and
#    torch's L-BFGS (forward)
step runs 150 python3 benchmarks/throughput.py --device "$DEVICE" --whole-run \
  --variants graphs,device,forward --json "$WORK/runs.json" -- $JOB
# 4. K default jobs at once on the one GPU (joblib), seeds 0..K-1, on the fast path
SEEDS=$(seq -s, 0 $((K - 1)))
step concurrency 150 python3 run.py -m hydra/launcher=joblib hydra.launcher.n_jobs=$K \
  device=$DEVICE $FAST $JOB seed=$SEEDS hydra.sweep.dir="$WORK/concurrency"
# 5. the reference budget (15,000 Adam, then rounds of 1,000 Adam + 1,000 L-BFGS, float64) for
#    two rounds of RSmote and of RAD on Burgers: the per-round time behind the projections
step reference 200 python3 run.py -m device=$DEVICE $FAST budget=reference rounds=2 $REF \
  sampler=rsmote_paper,rad hydra.sweep.dir="$WORK/reference"
# batched ensembles (STEPS="ensemble"): ms per step per member for S seeds in one process, the
# members' losses one after the other (loop) and one vmap over them, S up to 128
ENS_SIZES=${ENS_SIZES:-1,2,4,8,16,32,64,128}
[ "$QUICK" = 1 ] && ENS_SIZES=1,4
step ensemble 150 python3 benchmarks/ensemble.py --device "$DEVICE" --sizes "$ENS_SIZES" \
  --adam 30 --lbfgs 30 --warmup 5 --json "$WORK/ensemble.json" -- $JOB
# the projected device-hours of a paper table (burgers_table, 70 runs) at each budget, run one
# by one and as batched jobs of 4, from the step times just measured (STEPS="projection")
step projection 30 python3 benchmarks/project_table.py "$WORK/ensemble.json" --size 4 \
  --json "$WORK/projection.json"
# one configuration of burgers_table at budget=paper as one batched job (its 5 seeds,
# vmap, one round instead of ten, the ensemble's L-BFGS: the device one): the wall time behind a whole table (STEPS="ensemble_table")
TABLE_ROUNDS="rounds=1"
[ "$QUICK" = 1 ] && TABLE_ROUNDS="rounds=1 optimizer.pretrain_steps=50 optimizer.adam_steps=10 optimizer.lbfgs_steps=10"
step ensemble_table 240 python3 run.py +experiment=burgers_table hydra/launcher=batched \
  hydra.launcher.vectorize=true optimizer.lbfgs_impl=device device=$DEVICE sampler=rsmote_paper n_points=2000 $TABLE_ROUNDS \
  hydra.sweep.dir="$WORK/ensemble_table"
# the Laplacian and memory steps (STEPS="laplacian memory_phases elliptic_d100 memory_vs_dim")
step laplacian 170 python3 benchmarks/laplacian.py --dims $DIMS_LAP --n-points $N_LAP \
  --device "$DEVICE" --repeats 5 --warmup 2 --json "$WORK/laplacian.json" \
  --methods ${LAP_METHODS:-autograd forward forward+compile forward+cudagraphs func hutchinson}
step memory_phases 120 python3 benchmarks/memory_phases.py --dims $DIMS_MEM --n-points $N_MEM \
  --n-dense $DENSE --device "$DEVICE" --json "$WORK/memory_phases.json"
step elliptic_d100 90 python3 run.py pde=elliptic pde.dim=100 model.width=128 model.depth=4 \
  device=$DEVICE progress=false $ELL hydra.run.dir="$WORK/elliptic_d100"
step memory_vs_dim 100 python3 run.py +experiment=memory_vs_dim device=$DEVICE \
  optimizer.pretrain_steps=20 optimizer.adam_steps=0 optimizer.lbfgs_steps=10 rounds=1 $MVD \
  hydra.sweep.dir="$WORK/memory_vs_dim"

find "$WORK" -name checkpoint.pt -delete
for name in throughput runs ensemble projection ensemble_table laplacian memory_phases; do
  [ -f "$WORK/$name.txt" ] && { echo "### $name"; grep -v '^{' "$WORK/$name.txt" | tail -30; }
done
python3 - "$WORK" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).rglob("metrics.json")):
    m = json.loads(path.read_text())
    keys = ("status", "sampler", "seed", "l2_rel_error", "wall_time_s", "time_train_s",
            "peak_gpu_mem_mb", "device")
    print(path.parent.relative_to(sys.argv[1]), {k: m.get(k) for k in keys})
EOF
cat "$WORK/steps.txt"; [ -f "$WORK/tests.txt" ] && tail -5 "$WORK/tests.txt"
echo done > "$OUT/DONE"
