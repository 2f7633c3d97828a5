"""Codec round-trip benchmark: how much intelligibility and quality survive encode -> decode.

    python -m benchmarks.codec --json [--codec DIR] [--data AUDIO_JSONL] [--limit N] [--sources wordnet,fortunes]

On the held-out split's target-voice audio (piper joe, the only voice the decoder renders) it reports
Whisper tiny.en WER of the originals and of the reconstructions, DNSMOS before/after, MCD (dB, DTW)
between them and codes per second. Questions in other voices are round-tripped too (`cross_voice_*`):
the decoder re-speaks them in the target voice, so their WER shows whether the codes keep the content
of unseen speakers. Finally the real LibriVox clips of Debian's pocketsphinx-testdata, if installed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
DEFAULT_DATA = ["data/corpus/audio_test.jsonl", "data/corpus_small/audio_test.jsonl"]

log = logging.getLogger("benchmarks.codec")


def librivox_rows(folder: Path = LIBRIVOX) -> list[dict]:
    """{"audio", "text"} for each clip listed in the folder's `transcription` file (Sphinx format)."""
    rows = []
    transcription = folder / "transcription"
    if not transcription.is_file():
        return rows
    for line in transcription.read_text().splitlines():
        if "(" not in line:
            continue
        text, utt_id = line.rsplit("(", 1)
        text = text.replace("<s>", "").replace("</s>", "").strip()
        rows.append({"audio": str(folder / f"{utt_id.strip(' )')}.wav"), "text": text, "voice": "librivox"})
    return rows


def run_rows(codec, scorer, rows: list[dict], quality: bool) -> dict:
    """Round-trip every row; WERs over the set, mean MCD/DNSMOS per clip, codes/s over total duration."""
    from ttt.audio.io import load_audio, resample
    from ttt.eval.metrics import mcd_dtw, wer

    refs, hyp_orig, hyp_rt, mcds, mos_orig, mos_rt = [], [], [], [], [], []
    n_codes, seconds, decode_time = 0, 0.0, 0.0
    for row in rows:
        wave, sample_rate = load_audio(row["audio"])
        codes = codec.encode(wave, sample_rate)
        start = time.perf_counter()
        out, out_rate = codec.decode(codes)
        decode_time += time.perf_counter() - start
        n_codes += len(codes)
        seconds += len(wave) / sample_rate
        refs.append(row["text"])
        hyp_orig.append(scorer.transcribe(wave, sample_rate))
        hyp_rt.append(scorer.transcribe(out, out_rate))
        if quality:
            from ttt.eval.quality import dnsmos

            mcds.append(mcd_dtw(resample(wave, sample_rate, out_rate), out, out_rate))
            mos_orig.append(dnsmos(wave, sample_rate)["ovrl"])
            mos_rt.append(dnsmos(out, out_rate)["ovrl"])
    result = {
        "n": len(rows),
        "wer_original": wer(refs, hyp_orig),
        "wer_roundtrip": wer(refs, hyp_rt),
        "codes_per_second": n_codes / seconds,
        "decode_rtf": decode_time / seconds,
        "examples": [{"text": r, "original": o, "roundtrip": h} for r, o, h in list(zip(refs, hyp_orig, hyp_rt))[:3]],
    }
    if quality:
        result.update(mcd_db=float(np.mean(mcds)), dnsmos_original=float(np.mean(mos_orig)), dnsmos_roundtrip=float(np.mean(mos_rt)))
    return result


def select_rows(rows: list[dict], target_voice: str, limit: int, sources: str | None = None
                ) -> tuple[list[dict], list[dict]]:
    """The first `limit` target-voice rows and the first `limit` other rows, of the given text sources only
    (comma-separated; None keeps every row). A manifest lists the closed world's rows first, so without
    `sources` a small `limit` on a mixed corpus measures closed-world speech alone."""
    from ttt.audio.fit import is_target

    if sources:
        keep = set(sources.split(","))
        if any("source" not in r for r in rows):
            raise ValueError("rows have no `source` field: render the corpus again with `ttt data synth` to use --sources")
        rows = [r for r in rows if r["source"] in keep]
        if not rows:
            raise ValueError(f"no rows of the sources {sorted(keep)}")
    target = [r for r in rows if is_target(r, target_voice)][:limit]
    others = [r for r in rows if not is_target(r, target_voice)][:limit]
    return target, others


def read_split(path: str) -> list[dict]:
    from ttt.audio.fit import read_rows

    return read_rows([path])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", type=Path, help="saved codec folder (default: the shipped codec)")
    parser.add_argument("--data", help=f"held-out audio JSONL (default: first existing of {DEFAULT_DATA})")
    parser.add_argument("--target-voice", default="piper")
    parser.add_argument("--limit", type=int, default=40, help="utterances per set (target voice, other voices)")
    parser.add_argument("--sources", help="comma-separated text sources to keep (e.g. wordnet,fortunes: open "
                        "speech only; the manifest's `source` field, written by `ttt data synth`)")
    parser.add_argument("--no-librivox", action="store_true")
    parser.add_argument("--wer-only", action="store_true", help="skip DNSMOS and MCD (quick comparisons)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from ttt.audio.codec import load_codec
    from ttt.eval.scorer import WhisperScorer

    data = args.data or next((p for p in DEFAULT_DATA if Path(p).is_file()), None)
    if data is None:
        parser.error(f"no held-out data: pass --data (looked for {DEFAULT_DATA})")
    try:
        target, others = select_rows(read_split(data), args.target_voice, args.limit, args.sources)
    except ValueError as e:
        parser.error(f"{data}: {e}")
    start = time.perf_counter()
    codec = load_codec(args.codec)
    load_seconds = time.perf_counter() - start
    scorer = WhisperScorer()

    held_out = run_rows(codec, scorer, target, quality=not args.wer_only)
    report = {
        "codec": str(args.codec or "default"),
        "data": data,
        "sources": args.sources,
        "frame_rate": codec.frame_rate,
        "codebook_size": codec.codebook_size,
        "load_seconds": load_seconds,
        "n_heldout": held_out["n"],
        "scorer_wer_original": held_out["wer_original"],
        "scorer_wer_roundtrip": held_out["wer_roundtrip"],
        "mcd_db": held_out.get("mcd_db"),
        "dnsmos_original": held_out.get("dnsmos_original"),
        "dnsmos_roundtrip": held_out.get("dnsmos_roundtrip"),
        "codes_per_second": held_out["codes_per_second"],
        "decode_rtf": held_out["decode_rtf"],
        "examples": held_out["examples"],
    }
    if others:
        cross = run_rows(codec, scorer, others, quality=False)
        report.update(n_cross_voice=cross["n"], cross_voice_wer_original=cross["wer_original"], cross_voice_wer_roundtrip=cross["wer_roundtrip"])
    librivox = [] if args.no_librivox else librivox_rows()[: args.limit]
    if librivox:
        real = run_rows(codec, scorer, librivox, quality=not args.wer_only)
        report.update(
            n_librivox=real["n"],
            librivox_wer_original=real["wer_original"],
            librivox_wer_roundtrip=real["wer_roundtrip"],
            librivox_mcd_db=real.get("mcd_db"),
            librivox_dnsmos_original=real.get("dnsmos_original"),
            librivox_dnsmos_roundtrip=real.get("dnsmos_roundtrip"),
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if key != "examples":
                print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
