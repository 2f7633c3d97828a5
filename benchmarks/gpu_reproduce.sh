#!/usr/bin/env bash
# The reproduction study's training on a GPU machine (issue #22 item 3), one command per device call.
#
#   here:  python -m benchmarks.reproduce --stage train --pack data/repro-pack    # training data, 12 MB: carry it
#   there: bash benchmarks/gpu_reproduce.sh [MINUTES]    # default 8; trains all 24 rows side by side, stops on time,
#          # sends finished rows (float16, <= 60 MiB) to $OUT; call again while the machine is warm to go on
#          # training and to send the rows left over (about 13 rows fit in one call's 64 MiB)
#   here:  python -m benchmarks.reproduce --stage eval --unbundle rows-*.tar --jobs 2 --steps 6000 --plateau 4
#
# Needs only torch, transformers, accelerate, pyyaml, safetensors (the GPU image has them); the eval's scorer
# (faster-whisper, over 200 MB) stays here. BUDGET must be the same in the eval call.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
MINUTES="${1:-8}"
BUDGET="${BUDGET:---steps 6000 --plateau 4}"
OUT_DIR="${OUT:-reproduce_out}"
"$PY" -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
# shellcheck disable=SC2086
"$PY" -m benchmarks.reproduce --stage train --data-dir data/repro-pack --device cuda --jobs 24 $BUDGET \
  --time-limit "$MINUTES" --bundle "$OUT_DIR" --bundle-mib 60
rc=$?
ls -la "$OUT_DIR"
exit $rc
