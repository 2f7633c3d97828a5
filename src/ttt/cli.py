"""The `ttt` command: one entry point, each subcommand group defined in the module it drives.

Every module listed in `COMMAND_MODULES` exposes `register(subparsers)`, which adds its parsers and sets
`func` on them. Modules keep heavy imports (torch, audio engines) inside their handlers so that
`ttt --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# errors that mean bad input or a run that cannot go on: printed as one line, exit status 1, no traceback
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, ConnectionError)

COMMAND_MODULES = [
    "ttt.corpus.cli",
    "ttt.audio.cli",
    "ttt.train_cli",
    "ttt.speech_cli",
    "ttt.eval_cli",
    "ttt.export",
    "ttt.grow",
    "ttt.hub_cli",
    "ttt.curves_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttt",
        description="text-to-talk: TtT speech-text language models (AR text + diffusion audio).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        print(f"ttt {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
