"""What every `ttt` command shares: the one error handler, the one logging setup and the decoding flags.

Kept apart from `ttt.cli.main` so that a command module run on its own (`python -m ttt.cli.train` under
`accelerate launch`) gets the same behaviour without importing the dispatcher that imports it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

# errors that mean bad input or a run that cannot go on: printed as one line, exit status 1, no traceback.
# OSError covers what the system refuses (a full disk, a permission, a path that is a directory).
USER_ERRORS = (ValueError, OSError, FloatingPointError)

# decoding flag -> GenerationConfig field
DECODING_FLAGS = {"--steps": "steps", "--block-length": "block_length", "--max-last-span": "max_last_span",
                  "--stop-threshold": "stop_threshold"}


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


def check_decoding(args: argparse.Namespace, **extra) -> None:
    """Refuse bad decoding flags before the model loads (~10 s for the shipped one), naming the flag.
    `extra` holds other GenerationConfig fields a command sets (`max_new_tokens` for eval)."""
    from ttt.config import GenerationConfig

    chosen = {**decoding(args), **extra}
    flags = {field: flag for flag, field in DECODING_FLAGS.items()}
    for field, value in chosen.items():
        if value is None:
            continue
        try:
            GenerationConfig(**{field: value})
        except ValueError as err:
            flag = flags.get(field, "--" + field.replace("_", "-"))
            raise ValueError(f"{flag} {value}: {err}") from None


def set_threads(threads: int | None) -> None:
    """`--threads N`: torch's CPU threads; 0 or fewer is an error (torch ignores 0 and fails later on -1)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def check_output_dir(path: str, flag: str = "--out") -> Path:
    """An output folder that can be written, checked before the work whose results it will hold."""
    import os

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out}: exists and is a file; give a folder")
    folder = out
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {out}: cannot write into {folder} (permission denied)")
    return out
