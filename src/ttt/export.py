"""`ttt export`: turn a training checkpoint into a release model directory.

A checkpoint carries optimizer state and full-precision weights; a release needs neither. The export
keeps what `SpeechLM.from_dir` reads — weights (optionally cast to float16, which halves the size; they
are upcast to float32 on load, and the stage-3 default model then spoke 9 of 10 valid TTS sentences with
the very same codes, 454 of 459 codes in all), HF config, tokenizer,
`ttt_config.json` — and writes `decoding.json`, the decoding settings the model was measured with, so
that `ttt demo` and `ttt eval` decode it the same way without flags.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")


def export_model(source: str | Path, out: str | Path, dtype: str = "float32", decoding: dict | None = None) -> Path:
    """Write the release directory `out` from the TtT model directory `source`; return `out`."""
    import torch

    from ttt.checkpoint import is_lora_checkpoint
    from ttt.generate import GenerationConfig
    from ttt.model import TtTModel
    from ttt.speech import DECODING_FILE

    source, out = Path(source), Path(out)
    if is_lora_checkpoint(source):
        raise ValueError(f"{source} is a LoRA checkpoint (adapters only): export the run's final/ directory, "
                         "where the adapters are merged into the backbone")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if out.resolve() == source.resolve():
        raise ValueError("export into a new directory, not over the checkpoint it reads")
    settings = dict(decoding or {})
    try:
        GenerationConfig(**settings)  # unknown keys fail before anything is written
    except TypeError as err:
        raise ValueError(f"decoding setting: {err}") from None
    model = TtTModel.from_pretrained(source, dtype=torch.float32)
    model.backbone.to(getattr(torch, dtype))
    model.save_pretrained(out)
    if settings:
        (out / DECODING_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return out


def parse_decoding(items: list[str]) -> dict:
    """`KEY=VALUE` pairs into GenerationConfig fields; values are read as JSON (numbers, true/false, null)."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--decoding takes KEY=VALUE, got {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="make a release model directory from a checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a TtT model directory: a full fine-tuning checkpoint or a run's final/")
    p.add_argument("out", help="the release directory to write (replaced atomically)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="weight dtype on disk (default float32)")
    p.add_argument("--decoding", action="append", default=[], metavar="KEY=VALUE",
                   help="a decoding default for decoding.json, e.g. --decoding steps=4 --decoding max_last_span=75")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = export_model(args.source, args.out, args.dtype, parse_decoding(args.decoding))
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"exported {args.source} -> {out} ({size / 2**20:.1f} MiB)")
    return 0
