#!/usr/bin/env bash
# The prepared GPU check: run from the project root on a CUDA machine, results under $OUT.
#   ../shared/gpu/fetch-wheels.sh        (here, once: Hydra/imbalanced-learn wheels into .whl/)
#   device tool: run "bash benchmarks/gpu_suite.sh" with carry [".whl"]
# Steps (each bounded by `timeout`, each writing its own files, so a late failure keeps the rest):
#   1. install the carried wheels; 2. GPU tests; 3. Laplacian benchmark at d = 10, 100;
#   4. memory per phase, d = 10..1000; 5. the default job on the GPU; 6. short paper sweeps.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" > "$OUT/torch.txt" 2>&1
export HYDRA_FULL_ERROR=1

timeout 90 python3 -m pytest -q -m gpu tests > "$OUT/pytest_gpu.txt" 2>&1
timeout 120 python3 benchmarks/laplacian.py --dims 10 100 --n-points 5000 --device cuda \
  --json "$OUT/laplacian.json" > "$OUT/laplacian.md" 2> "$OUT/laplacian.err"
timeout 150 python3 benchmarks/memory_phases.py --dims 10 50 100 200 1000 --device cuda \
  --json "$OUT/memory_phases.json" > "$OUT/memory_phases.md" 2> "$OUT/memory_phases.err"
timeout 90 python3 run.py device=cuda progress=false hydra.run.dir="$OUT/default_run" \
  > "$OUT/default_run.txt" 2>&1
# memory_vs_dim with the paper's setup (autograd Laplacian, RAD unchunked), a short budget
timeout 150 python3 run.py +experiment=memory_vs_dim optimizer.pretrain_steps=200 \
  optimizer.adam_steps=100 optimizer.lbfgs_steps=50 rounds=1 hydra.sweep.dir="$OUT/memory_vs_dim" \
  > "$OUT/memory_vs_dim.txt" 2>&1
find "$OUT" -name checkpoint.pt -delete
echo done > "$OUT/DONE"
