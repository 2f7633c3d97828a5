"""The `ttt` command: one entry point, each subcommand group defined in its own module of `ttt.cli`.

Every module listed in `COMMAND_MODULES` exposes `register(subparsers)`, which adds its parsers and sets
`func` on them. Modules keep heavy imports (torch, audio engines) inside their handlers so that
`ttt --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib

from ttt.cli.common import run_command

COMMAND_MODULES = [
    "ttt.cli.data",
    "ttt.cli.codec",
    "ttt.cli.train",
    "ttt.cli.speech",
    "ttt.cli.eval",
    "ttt.cli.model",
    "ttt.cli.serve",
    "ttt.cli.hub",
    "ttt.cli.curves",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttt",
        description="text-to-talk: TtT speech-text language models (AR text + diffusion audio).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: INFO lines and library progress bars (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return run_command(args.command, args.func, args)

