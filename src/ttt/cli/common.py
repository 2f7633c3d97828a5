"""What every `ttt` command shares: the one error handler, the one logging setup and the decoding flags.

Kept apart from `ttt.cli.main` so that a command module run on its own (`python -m ttt.cli.train` under
`accelerate launch`) gets the same behaviour without importing the dispatcher that imports it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

# errors that mean bad input or a run that cannot go on: printed as one line, exit status 1, no traceback
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_command(command: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command's handler; a user error becomes one line on stderr and exit status 1."""
    try:
        return int(func(args) or 0)
    except USER_ERRORS as err:
        print(f"ttt {command}: error: {err}", file=sys.stderr)
        return 1


def decoding_arguments(p: argparse.ArgumentParser) -> None:
    """Decoding flags; unset ones fall back to the model's decoding.json, then to GenerationConfig."""
    p.add_argument("--steps", type=int, help="denoising steps per audio block (default: the model's, else 4)")
    p.add_argument("--block-length", type=int, help="codes per diffusion block (default: the model's, else 26)")
    p.add_argument("--max-last-span", type=int, help="cap on codes in the final audio span (default: the model's)")
    p.add_argument("--stop-threshold", type=float,
                   help="end the final span where p(end of audio) reaches this, even if a code is likelier")


def decoding(args: argparse.Namespace) -> dict:
    """The decoding flags as `SpeechLM.from_dir` keyword arguments (None = the model's own setting)."""
    return {"steps": args.steps, "block_length": args.block_length, "max_last_span": args.max_last_span,
            "stop_threshold": args.stop_threshold}
