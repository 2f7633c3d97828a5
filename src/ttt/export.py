"""`ttt export`: turn a training checkpoint into a release model directory.

A checkpoint carries optimizer state and full-precision weights; a release needs neither. The export
keeps what `SpeechLM.from_dir` reads — weights (optionally cast to float16, which halves the size; they
are upcast to float32 on load, and the stage-3 default model then spoke 9 of 10 valid TTS sentences with
the very same codes, 454 of 459 codes in all), HF config, tokenizer,
`ttt_config.json` — and writes `decoding.json`, the decoding settings the model was measured with, so
that `ttt demo` and `ttt eval` decode it the same way without flags.

Several sources are averaged weight by weight (checkpoint averaging, as in Transformer NMT and SWA):
the last checkpoints of one run sit around the same minimum, and their mean is often better than any
one of them. Whether it is, is for each run to measure: on the default model's stage 4c, the mean of
the last four checkpoints had valid TTS WER 0.230 and step 2,000 alone 0.206, within the noise of 80
sentences.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")


def export_model(source: str | Path | list, out: str | Path, dtype: str = "float32",
                 decoding: dict | None = None) -> Path:
    """Write the release directory `out` from one TtT model directory, or the weight average of several
    (`source` a list; config and tokenizer come from the first); return `out`."""
    import torch

    from ttt.checkpoint import is_lora_checkpoint
    from ttt.generate import GenerationConfig
    from ttt.hub import read_card, write_model_card
    from ttt.model import TtTModel
    from ttt.speech import DECODING_FILE

    sources = [Path(s) for s in (source if isinstance(source, list) else [source])]
    out = Path(out)
    if not sources:
        raise ValueError("export needs at least one source directory")
    for src in sources:
        if is_lora_checkpoint(src):
            raise ValueError(f"{src} is a LoRA checkpoint (adapters only): export the run's final/ directory, "
                             "where the adapters are merged into the backbone")
        if out.resolve() == src.resolve():
            raise ValueError("export into a new directory, not over a checkpoint it reads")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    settings = dict(decoding or {})
    try:
        GenerationConfig(**settings)  # unknown keys fail before anything is written
    except TypeError as err:
        raise ValueError(f"decoding setting: {err}") from None
    model = TtTModel.from_pretrained(sources[0], dtype=torch.float32)
    if len(sources) > 1:
        model.backbone.load_state_dict(_average(model, sources))
    model.backbone.to(getattr(torch, dtype))
    model.save_pretrained(out)
    if settings:
        (out / DECODING_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    write_model_card(out, training=read_card(sources[0]).get("training"))  # now with decoding.json
    return out


def _average(first, sources: list[Path]) -> dict:
    """The mean of the sources' backbone weights; every source must have the first one's TtT config,
    vocabulary and tensor shapes, or the mean would mix different models."""
    import torch

    from ttt.model import TtTModel

    total = {k: v.detach().to(torch.float64).clone() for k, v in first.backbone.state_dict().items()}
    for src in sources[1:]:
        other = TtTModel.from_pretrained(src, dtype=torch.float32)
        if other.config != first.config or len(other.tokenizer) != len(first.tokenizer):
            raise ValueError(f"{src} is not the same model as {sources[0]} (TtT config or vocabulary differs)")
        weights = other.backbone.state_dict()
        if weights.keys() != total.keys() or any(weights[k].shape != total[k].shape for k in total):
            raise ValueError(f"{src} has other weight names or shapes than {sources[0]}")
        for k in total:
            total[k] += weights[k].to(torch.float64)
    return {k: (v / len(sources)).to(torch.float32) for k, v in total.items()}


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
    p.add_argument("source", nargs="+", help="a TtT model directory (a full fine-tuning checkpoint or a run's "
                   "final/); several are averaged weight by weight")
    p.add_argument("out", help="the release directory to write (replaced atomically)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="weight dtype on disk (default float32)")
    p.add_argument("--decoding", action="append", default=[], metavar="KEY=VALUE",
                   help="a decoding default for decoding.json, e.g. --decoding steps=4 --decoding max_last_span=75")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = export_model(args.source, args.out, args.dtype, parse_decoding(args.decoding))
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    what = args.source[0] if len(args.source) == 1 else f"the mean of {len(args.source)} checkpoints"
    print(f"exported {what} -> {out} ({size / 2**20:.1f} MiB)")
    return 0
