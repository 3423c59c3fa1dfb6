#!/usr/bin/env bash
# The GPU checks behind the CUDA figures of docs/benchmarks.md, as one script of named stages:
#   tests   CUDA variants of the lean, sample and partial tests
#   first   one first-order search step per mode at batch 64 and 256 (fresh process each)
#   second  one second-order step per mode at batch 64
#   ops     candidate-set sizes 2, 4, 6, 12 for exact and lean at batch 64 (8 is in `first`)
#   reference  the official code's plain formulation against exact, both orders, batch 64
#   conv    the search's depthwise convs per formulation (dartsnas bench conv) at batch 64 and 256
#   search  a real short search through the command line
#   train   one CIFAR-10-sized training epoch of DARTS_V2 (random CIFAR-shaped data, --amp), eager and compiled
#   compile-tests  the compiled step against eager on CUDA (inductor, CUDA graphs, TF32 off) and no host sync
#   compile    the paper-setting step, first order, batch 64: the official formulation, every mode eager, and
#              exact, partial and lean compiled (each cell; then exact as the whole network), with compile times
#   ddp     one process under DistributedDataParallel against a plain one (nccl): DDP's own overhead
#   epoch   one first-order search epoch at the paper setting (CIFAR-10's shape; 391 steps), eager and compiled
# A step costs about 30 s on an H200 (mostly the fresh process's start), so a 10-minute device call
# holds about 15 configurations: pick stages to fit. `check` is the prepared call of at most 8 minutes:
# compile-tests, compile and ddp (the timeouts below add up to 480 s); `epoch` is the next call.
# Usage: bash benchmarks/gpu.sh [OUTDIR] [STAGE ...]   (default: every stage; needs CUDA torch)
set -uo pipefail
out=${1:-gpu-results}
shift || true
stages=${*:-tests first second ops reference conv search train compile-tests compile ddp epoch}
stages=${stages/check/compile-tests compile ddp}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
bench="$py -m dartsnas bench search-step --device cuda --steps 3 --warmup 1"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$out/env.txt"

for stage in $stages; do
  case $stage in
    tests) timeout 90 $py -m pytest -q -p no:cacheprovider tests/test_lean.py tests/test_modes.py -k cuda 2>&1 \
             | tail -3 | tee "$out/tests.txt" ;;
    first) timeout 300 $bench --mode exact lean partial sample --order first --batch 64 256 2>&1 | tee "$out/bench-first.txt" ;;
    second) timeout 200 $bench --mode exact lean partial sample --order second --batch 64 2>&1 | tee "$out/bench-second.txt" ;;
    ops) timeout 280 $bench --mode exact lean --ops 2 4 6 12 --order first --batch 64 2>&1 | tee "$out/bench-ops.txt" ;;
    reference) timeout 200 $bench --mode reference exact --order first second --batch 64 2>&1 \
                 | tee "$out/bench-reference.txt" ;;
    conv) timeout 120 $py -m dartsnas bench conv --device cuda --batch 64 256 --steps 11 --warmup 3 2>&1 \
            | tee "$out/bench-conv.txt" ;;
    search) timeout 60 $py -m dartsnas search --config quick --set dataset=digits --set subset=null --set epochs=3 \
              --device cuda --no-progress --out "$out/runs" 2>&1 | grep -E "memory|epoch|search:" | tee "$out/search.txt" ;;
    train) for flag in "" --compile; do
             timeout 150 $py -m dartsnas train DARTS_V2 --config cifar10 --set dataset=fake \
               --set "data_options={shape: [3, 32, 32], size: 50000}" --set epochs=1 --set plot=false $flag \
               --device cuda --amp --no-progress --out "$out/runs" 2>&1 | grep -vE "^\s*$" | tail -4 | tee -a "$out/train.txt"
           done ;;
    compile-tests) timeout 150 $py -m pytest -q -p no:cacheprovider tests/test_compile.py -k cuda 2>&1 \
                     | tail -5 | tee "$out/compile-tests.txt" ;;
    compile) timeout 230 $bench --mode reference exact partial lean sample --compile off on --order first --batch 64 \
               2>&1 | tee "$out/bench-compile.txt"
             timeout 40 $bench --mode exact --compile on --compile-scope network --order first --batch 64 2>&1 \
               | tee "$out/bench-compile-network.txt" ;;
    ddp) timeout 60 $py -m dartsnas bench distributed --device cuda --ddp-alone --ranks 1 --threads 16 2>&1 \
           | tee "$out/ddp-alone.txt" ;;
    epoch) for flag in "" --compile; do
             timeout 280 $py -m dartsnas search --config cifar10 --set dataset=fake \
               --set "data_options={shape: [3, 32, 32], size: 50000}" --set epochs=1 --set plot=false $flag \
               --device cuda --no-progress --out "$out/runs" 2>&1 | grep -E "search:|epoch" | tee -a "$out/epoch.txt"
           done ;;
    *) echo "unknown stage $stage (tests first second ops reference conv search train compile-tests compile ddp" \
            "epoch; check = compile-tests compile ddp)"; exit 2 ;;
  esac
done
rm -rf "$out/runs"
