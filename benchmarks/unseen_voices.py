"""Unseen-speaker eval set: the spoken questions of an eval file, asked again by voices no corpus uses.

    python -m benchmarks.unseen_voices --data data/tokens/valid_notts.jsonl --out data/valid-unseen-voices
    ttt eval --model DIR --data data/valid-unseen-voices/eval.jsonl

The valid split hears only training speakers, while half of the test split's questions are spoken by
test-only voices; so valid alone cannot tell whether a model copes with a new speaker. This rewrites every
`spoken_qa` (and, with `--tasks`, `asr`) item of an eval file with its question audio re-rendered by the
four `UNSEEN_VOICES` in turn (espeak-ng variants that neither the standard, the extra nor the test-only
voices use), keeping text, answer and reference answer audio, so the two eval runs differ only in who
asks. Deterministic: one freshly seeded espeak-ng engine renders the items in file order.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def revoice(data: Path, out: Path, tasks: tuple[str, ...], limit: int | None) -> int:
    """Write `out/eval.jsonl` and `out/wavs/`; returns the number of items written."""
    import soundfile as sf

    from ttt.corpus.synth import SAMPLE_RATE, corpus_wave
    from ttt.corpus.voices import UNSEEN_VOICES, make_engine
    from ttt.training.data import read_records

    engine = make_engine("espeak", seed=0)
    voices = list(UNSEEN_VOICES.values())
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for item in (r.example for r in read_records(data)):
        if item.get("task") not in tasks or not item.get("audio"):
            continue
        voice = voices[len(rows) % len(voices)]
        said = item["text"]  # the question, or the ASR transcript
        wave = corpus_wave(*engine.synthesize(said, **voice.params), f"{voice.name} for {said!r}")
        name = f"wavs/{len(rows):05d}-{voice.name}.wav"
        sf.write(out / name, wave, SAMPLE_RATE, subtype="PCM_16")
        row = {**item, "audio": name, "voice": voice.name}
        if item.get("answer_audio"):
            row["answer_audio"] = os.path.relpath((data.parent / item["answer_audio"]).resolve(), out.resolve())
        rows.append(row)
        if limit and len(rows) == limit:
            break
    (out / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unseen_voices", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="eval JSONL (`ttt eval` format)")
    parser.add_argument("--out", required=True, type=Path, help="folder for eval.jsonl and wavs/")
    parser.add_argument("--tasks", default="spoken_qa", help="comma-separated tasks to re-voice (default: spoken_qa)")
    parser.add_argument("--limit", type=int, help="at most this many items (the first ones)")
    args = parser.parse_args(argv)
    n = revoice(args.data, args.out, tuple(args.tasks.split(",")), args.limit)
    print(f"{n} items re-voiced into {args.out / 'eval.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
