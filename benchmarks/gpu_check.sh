#!/usr/bin/env bash
# Every GPU measurement of issue #25 in one command, about 6 minutes on one H100/H200, random weights, no
# downloads; needs only PyTorch + transformers (+ accelerate) and this repository:
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root (<= 6 min)
#   bash benchmarks/gpu_check.sh --inductor   # the same, then step 3 (<= 2 more minutes)
#   bash benchmarks/gpu_check.sh --smoke      # CPU, a tiny model: checks that every step of the script runs
#
# 1. decoding table, Qwen2.5-0.5B and 1.5B shapes, bf16: AR vs TtT (steps 2, 4), cache vs no cache, time to
#    first audio, the fast engine (CUDA graphs) against the previous engine, same run;
# 2. training step, 0.5B shape, bf16, 1,024 / 2,048 / 4,096 tokens: plain causal vs TtT dense vs TtT Flex;
# 3. (--inductor) the fast engine with torch.compile (inductor) on the 0.5B shape: it compiles for minutes.
# Each step has its own time limit, so one that fails or hangs costs only its own share. Output: stdout and
# gpu_check_out/*.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
OUT=gpu_check_out
mkdir -p "$OUT"
failed=0

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0))s"
  [[ $rc == 0 ]] || failed=1
}

if [[ "${1:-}" == "--smoke" ]]; then
  step generation_smoke 300 "$PY" -m benchmarks.generation --smoke --compare-eager --threads 1
  step training_attention_smoke 300 "$PY" -m benchmarks.training_attention --smoke
  exit $failed
fi

"$PY" -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
step generation_0.5b 100 "$PY" -m benchmarks.generation --device cuda --dtype bfloat16 --size 0.5b --compare-eager --repeats 2
step generation_1.5b 110 "$PY" -m benchmarks.generation --device cuda --dtype bfloat16 --size 1.5b --compare-eager --repeats 2
step training_attention 140 "$PY" -m benchmarks.training_attention --device cuda --dtype bfloat16 --size 0.5b --steps 3
if [[ "${1:-}" == "--inductor" ]]; then
  step generation_0.5b_inductor 120 "$PY" -m benchmarks.generation --device cuda --dtype bfloat16 --size 0.5b --compile inductor --repeats 2 --steps 4
fi
exit $failed
