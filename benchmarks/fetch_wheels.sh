#!/usr/bin/env bash
# Puts into ./.whl the pure-Python wheels the project needs on a GPU machine without access to a
# package index whose image already has torch, numpy, scipy, pandas, matplotlib, scikit-learn
# and tqdm (but not Hydra or imbalanced-learn). Run it from the project root on a machine that
# reaches PyPI; .whl/ is kept out of git through .git/info/exclude. On the GPU machine,
# benchmarks/gpu_suite.sh installs them itself; by hand:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
set -eu
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for spec in "hydra-core<1.4" "omegaconf<2.4" "antlr4-python3-runtime==4.9.3" "imbalanced-learn" \
            "hydra-submitit-launcher" "submitit" "hydra-joblib-launcher"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
    --platform any -d .whl "$spec" 2>/dev/null \
  || python3 -m pip download -q --no-deps --no-binary=:none: -d .whl "$spec"
done
# antlr4 4.9.3 ships only as an sdist: build a wheel from it here (pure Python)
if ls .whl/antlr4-python3-runtime-*.tar.gz >/dev/null 2>&1; then
  python3 -m pip wheel -q --no-deps -w .whl .whl/antlr4-python3-runtime-*.tar.gz \
    && rm -f .whl/antlr4-python3-runtime-*.tar.gz
fi
ls -la .whl
