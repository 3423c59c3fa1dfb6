#!/usr/bin/env bash
# The GPU checks behind the README's CUDA figures, as one script: CUDA tests, the search-step table at
# batch 64 and 256 for every mode and both orders, the candidate-set grid, a real search through the
# command line, and one epoch of the paper's CIFAR-10 evaluation network (on random CIFAR-shaped data).
# Usage: bash benchmarks/gpu.sh [OUTDIR]   (needs a CUDA build of torch and the package importable)
set -uo pipefail
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$out/env.txt"

# 1. Correctness on CUDA: lean == exact gradients, one op per edge in sample mode, partial's formula.
timeout 90 $py -m pytest -q -p no:cacheprovider tests/test_lean.py tests/test_modes.py -k cuda 2>&1 | tail -3 | tee "$out/tests.txt"

# 2. One search step per mode, order and batch size (fresh process each).
timeout 240 $py -m dartsnas bench search-step --device cuda --mode exact lean partial sample \
    --order first second --batch 64 256 --steps 3 --warmup 1 2>&1 | tee "$out/bench-modes.txt"

# 3. Candidate-set sizes at batch 64, first order.
timeout 110 $py -m dartsnas bench search-step --device cuda --mode exact lean --ops 2 4 6 8 12 \
    --batch 64 --order first --steps 3 --warmup 1 2>&1 | tee "$out/bench-ops.txt"

# 4. A real (short) search through the command line, and one CIFAR-10-sized training epoch of DARTS_V2.
timeout 60 $py -m dartsnas search --config quick --set dataset=digits --set subset=null --set epochs=3 \
    --device cuda --no-progress --out "$out/runs" 2>&1 | grep -E "memory|epoch|search:" | tee "$out/search.txt"
timeout 100 $py -m dartsnas train DARTS_V2 --config cifar10 --set dataset=fake \
    --set "data_options={shape: [3, 32, 32], size: 50000}" --set epochs=1 --set plot=false \
    --device cuda --amp --no-progress --out "$out/runs" 2>&1 | grep -vE "^\s*$" | tail -4 | tee "$out/train.txt"
rm -rf "$out/runs"
