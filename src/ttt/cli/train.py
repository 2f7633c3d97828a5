"""`ttt train`: train a TtT model from a YAML config, with CLI overrides.

Multi-GPU / multi-node runs use the same command under `accelerate launch`, e.g.
`accelerate launch --config_file configs/accelerate/ddp.yaml -m ttt.cli.train --config configs/tiny.yaml`
(also `fsdp.yaml`, `deepspeed-zero3.yaml`). Several CPU processes (gloo) start with torchrun, since
`accelerate launch` needs MPI for that:
`ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m ttt.cli.train --config configs/tiny.yaml`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from ttt.cli.common import run_command

# flag -> dotted config key; flags left unset do not override the file
_FLAGS = {
    "backbone": "backbone.path",
    "gguf_file": "backbone.gguf_file",
    "mode": "ttt.mode",
    "out": "out_dir",
    "max_steps": "max_steps",
    "max_minutes": "max_minutes",
    "batch_size": "batch_size",
    "grad_accum": "grad_accum",
    "lr": "optim.lr",
    "seed": "seed",
    "precision": "precision",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML training config (see configs/tiny.yaml)")
    p.add_argument("--backbone", metavar="DIR", help="HF checkpoint directory (sets backbone.source=hf)")
    p.add_argument("--gguf-file", metavar="F", help="GGUF file inside --backbone (or an absolute path)")
    p.add_argument("--init-from", metavar="DIR", help="start from a TtT model directory (backbone.source=ttt)")
    p.add_argument("--mode", choices=("ttt", "ar", "nar"), help="TtT, or the AR / NAR baseline")
    p.add_argument("--out", metavar="DIR", help="output directory (checkpoints, log.jsonl, final/)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="wall-clock budget: stop after the first step at which M minutes were spent in the "
                        "training loop (the clock survives --resume), save and export final/")
    p.add_argument("--batch-size", type=int, help="examples per micro-batch per process")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None, help="LoRA adapters")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set optim.warmup_steps=100 --set ttt.unmasked_audio_prob=0.2")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a TtT model (accelerate: 1 CPU process to multi-node)")
    add_arguments(p)
    p.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """The config overrides the command line asks for, as dotted keys."""
    from ttt.training.config import parse_override

    found = {key: getattr(args, flag) for flag, key in _FLAGS.items() if getattr(args, flag) is not None}
    if args.backbone is not None or args.gguf_file is not None:
        found["backbone.source"] = "hf"
        if args.backbone is None:
            found["backbone.path"] = "."
    if args.init_from is not None:
        found.update({"backbone.source": "ttt", "backbone.path": args.init_from})
    if args.lora is not None:
        found["lora.enabled"] = args.lora
    if args.gradient_checkpointing is not None:
        found["gradient_checkpointing"] = args.gradient_checkpointing
    found.update(parse_override(text) for text in args.set)
    return found


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState
    from transformers.utils import logging as hf_logging

    from ttt.training.config import load_config
    from ttt.training.curves import plot_run
    from ttt.training.loop import train

    cfg = load_config(args.config, overrides(args))
    hf_logging.disable_progress_bar()  # per-file load/save bars would interleave with the training bar
    out = train(cfg, resume=args.resume)
    if PartialState().is_main_process:  # after the run, so that a plotting problem cannot cost training
        logging.getLogger(__name__).info("curves: %s", plot_run(out))
    logging.getLogger(__name__).info("done: %s", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m ttt.cli.train`), the form `accelerate launch -m` needs."""
    parser = argparse.ArgumentParser(prog="ttt train", description="Train a TtT model.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_command("train", run, args)


if __name__ == "__main__":
    sys.exit(main())
