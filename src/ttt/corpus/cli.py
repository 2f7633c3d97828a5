"""`ttt data synth`: build the synthetic speech corpus from the command line."""
from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic speech corpus")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    synth = commands.add_parser(
        "synth", help="synthesize the corpus (wavs + JSONL manifests) into a folder",
        description="Render the closed-world speech corpus with piper, flite and espeak-ng voices. "
                    "Deterministic for a given seed and size, whatever the number of workers.")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", default="default", choices=("tiny", "small", "default"),
                       help="preset counts (default: %(default)s)")
    for task in ("spoken-qa", "asr", "tts", "text-chat"):
        synth.add_argument(f"--{task}", type=int, metavar="N",
                           help=f"train examples of task {task.replace('-', '_')} "
                                "(overrides --size; valid/test scale with it)")
    synth.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="processes (default: all cores)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    synth.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import time

    from ttt.corpus.synth import SIZES, build_corpus

    overrides = {task: getattr(args, task) for task in ("spoken_qa", "asr", "tts", "text_chat")
                 if getattr(args, task) is not None}
    size = dataclasses.replace(SIZES[args.size], **overrides)
    start = time.perf_counter()
    card = build_corpus(args.out, seed=args.seed, size=size, workers=args.workers,
                        overwrite=args.overwrite)
    print(json.dumps({"examples": card["examples"], "wavs": card["wavs"],
                      "total_hours": card["total_hours"]}, indent=2))
    print(f"corpus written to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0
