#!/usr/bin/env bash
# Rebuild the open-vocabulary data set (issue #21) from scratch, offline, step by step:
#   1. Debian text sources (make corpus-deps)        4. speech for every sentence (ttt data synth)
#   2. text, cleaned and split by document (full)    5. codes + chat-format data (ttt data build)
#   3. spoken-QA answers by self-distillation (ttt data qa)
# Every step is cached or resumable: rerunning renders no wave twice (--wav-cache), asks no question twice
# (OUT/qa/answers.jsonl) and encodes no wave twice (OUT/tokens/codes.jsonl).
#
#   scripts/data_open.sh                     # full scale (hours of CPU; see docs/open_corpus.md)
#   SCALE=small scripts/data_open.sh         # a few hundred sentences, minutes: proves the chain end to end
#   OUT=data/open OPEN_SENTENCES=5000 scripts/data_open.sh
# Each step's wall time goes to OUT/times.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-full}
if [ "$SCALE" = small ]; then
    : "${OUT:=data/open-small}" "${OPEN_SENTENCES:=200}" "${OPEN_VOICES:=1}" "${QA_LIMIT:=20}" "${QA_EVERY:=850}"
    : "${WORLD_SIZE:=tiny}" "${QA_BATCH:=32}"
else
    : "${OUT:=data/open}" "${OPEN_SENTENCES:=20000}" "${OPEN_VOICES:=2}" "${QA_LIMIT:=5000}" "${QA_EVERY:=1}"
    : "${WORLD_SIZE:=small}"
fi
SOURCES=${SOURCES:-wordnet,fortunes,world}   # add glosses for WordNet's definitions (mostly phrases)
QA_BATCH=${QA_BATCH:-16}                     # questions per generate call
WORKERS=${WORKERS:-$(nproc)}
TEXT_CHUNK=${TEXT_CHUNK:-4}                  # as configs/smollm2-*.yaml
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
TTT="$PY -m ttt.cli"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

mkdir -p "$OUT"
step() {  # step NAME COMMAND...: run it, log its wall time
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*"
    "$@"
    printf '%s\t%d\n' "$name" $((SECONDS - start)) | tee -a "$OUT/times.tsv"
}

step deps make corpus-deps
step text $TTT data text --out "$OUT/text" --sources wordnet,glosses,fortunes
# The backbone's raw answers are committed (datasets/open-qa/answers.jsonl, made by this very step): seeding
# OUT/qa with them skips the ~45 CPU-minutes of asking; the filter below still runs, and any question the
# committed file lacks is asked. QA_FRESH=1 asks every question again.
if [ -z "${QA_FRESH:-}" ] && [ ! -e "$OUT/qa/answers.jsonl" ] && [ -f datasets/open-qa/answers.jsonl ]; then
    mkdir -p "$OUT/qa" && cp datasets/open-qa/answers.jsonl "$OUT/qa/answers.jsonl"
fi
step qa $TTT data qa --out "$OUT/qa" --limit "$QA_LIMIT" --every "$QA_EVERY" --batch-size "$QA_BATCH" --threads 2
step synth $TTT data synth --out "$OUT/corpus" --overwrite --sources "$SOURCES" --size "$WORLD_SIZE" \
    --open-sentences "$OPEN_SENTENCES" --open-voices "$OPEN_VOICES" --qa "$OUT/qa/qa.jsonl" \
    --wav-cache "$OUT/wavcache" --workers "$WORKERS"
GGUF=$($PY -c "from ttt.corpus.qa import smollm2_gguf; print(smollm2_gguf())")
step build $TTT data build --corpus "$OUT/corpus" --out "$OUT/tokens" --tokenizer "$GGUF" --text-chunk "$TEXT_CHUNK"
echo "open-vocabulary data in $OUT (times in $OUT/times.tsv)"
