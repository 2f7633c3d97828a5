"""What every `ttt` command shares: the one error handler, the one logging setup and the model flags.

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

# decoding flag -> GenerationConfig field; unset flags fall back to the model's decoding.json, then the default
DECODING_FLAGS = {
    "--steps": "steps", "--block-length": "block_length", "--max-last-span": "max_last_span",
    "--stop-threshold": "stop_threshold", "--max-new-tokens": "max_new_tokens", "--temperature": "temperature",
    "--top-k": "top_k", "--top-p": "top_p", "--threshold": "threshold",
    "--diffusion-temperature": "diffusion_temperature", "--cfg-scale": "cfg_scale", "--cfg-context": "cfg_context",
    "--seed": "seed", "--nar-length": "nar_length", "--final-span": "final_span", "--compile": "compile",
}


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log levels for the run: a `quiet` command (one that answers from a model: it prints its answer and
    nothing else) starts at WARNING, the others (long jobs whose progress lines matter) at INFO; each `-v`
    goes one level down. Transformers and huggingface_hub say only errors and draw no progress bars (the
    "Loading weights" bar of every model load) unless `-v` is given."""
    level = max(logging.DEBUG, (logging.WARNING if quiet else logging.INFO) - 10 * verbose)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger().setLevel(level)  # basicConfig does nothing the second time in one process (tests)
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    library_level = {logging.WARNING: logging.ERROR, logging.INFO: logging.WARNING}.get(level, logging.INFO)
    hf_logging.set_verbosity(library_level)
    hub_logging.set_verbosity(library_level)
    if verbose:
        hf_logging.enable_progress_bar()
        enable_progress_bars()
    else:
        hf_logging.disable_progress_bar()
        disable_progress_bars()


def run_command(command: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command's handler; a user error becomes one line on stderr and exit status 1.

    Flag values that need no model (the decoding flags) are checked first, so that a typo costs no model
    load; logging is set up after that check (it imports transformers)."""
    try:
        if getattr(args, "precheck", None) is not None:
            args.precheck(args)
        setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
        return int(func(args) or 0)
    except USER_ERRORS as err:
        print(f"ttt {command}: error: {err}", file=sys.stderr)
        return 1


def device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="where the Transformer runs: cpu (default, float32), cuda or "
                                                   "cuda:N (bfloat16); the codec runs on the CPU")


def decoding_arguments(p: argparse.ArgumentParser) -> None:
    """The decoding flags (every `GenerationConfig` knob a user sets); unset ones fall back to the model's
    decoding.json, then to GenerationConfig. A command that decodes a model is quiet by default and checks
    these values before it loads anything."""
    p.add_argument("--steps", type=int, help="denoising steps per audio block (default: the model's, else 4)")
    p.add_argument("--block-length", type=int, help="codes per diffusion block (default: the model's, else 26)")
    p.add_argument("--max-last-span", type=int, help="cap on codes in the final audio span (default: the model's)")
    p.add_argument("--stop-threshold", type=float,
                   help="end the final span where p(end of audio) reaches this, even if a code is likelier")
    p.add_argument("--max-new-tokens", type=int, help="cap on generated tokens per turn (default: 1024)")
    p.add_argument("--temperature", type=float, help="text sampling temperature (default: 0, greedy)")
    p.add_argument("--top-k", type=int, help="text sampling: keep the K likeliest tokens (default: 0, all)")
    p.add_argument("--top-p", type=float, help="text sampling: nucleus mass in (0, 1] (default: 1)")
    p.add_argument("--threshold", type=float, help="audio: commit every code above this confidence in (0, 1] "
                                                   "per step (Fast-dLLM; default: a fixed number per step)")
    p.add_argument("--diffusion-temperature", type=float, help="audio: Gumbel noise on code predictions "
                                                               "(default: 0, greedy)")
    p.add_argument("--cfg-scale", type=float, help="audio: classifier-free guidance scale (default: 0, off)")
    p.add_argument("--cfg-context", choices=("prompt", "all"),
                   help="audio guidance: the unguided row masks the prompt (default) or all context (the reference's)")
    p.add_argument("--seed", type=int, help="sampling seed (default: the model's, else 0)")
    p.add_argument("--nar-length", type=int, help="NAR-baseline models only: tokens in the one response block "
                                                   "(default: --max-new-tokens)")
    p.add_argument("--final-span", choices=("cached", "official"),
                   help="final span's earlier blocks: cached (attended causally) or official (re-run with each "
                        "new block as one bidirectional run; default: the model's, else cached)")
    p.add_argument("--compile", choices=("none", "inductor", "graphs"),
                   help="how the decoding forwards run (tokens unchanged): none (eager; the CPU default), "
                        "inductor (torch.compile of the one-token step: on CPU AR decoding ~1.8x faster after a "
                        "first-turn compile of 13-40 s, cached across runs; for long jobs) or graphs (CUDA graphs; "
                        "the GPU default)")
    p.set_defaults(quiet=True, precheck=decoding)


def decoding(args: argparse.Namespace) -> dict:
    """The decoding flags as `SpeechLM.from_dir` keyword arguments (None = the model's own setting), each set
    value checked by `GenerationConfig` (a one-line error naming the flag)."""
    from ttt.config import GenerationConfig

    settings = {field: getattr(args, field) for field in DECODING_FLAGS.values()}
    for flag, field in DECODING_FLAGS.items():
        if settings[field] is not None:
            try:
                GenerationConfig(**{field: settings[field]})
            except ValueError as err:  # "top_p must be ..." -> "--top-p must be ..."
                message = str(err)
                raise ValueError(flag + message[len(field):] if message.startswith(f"{field} ")
                                 else f"{flag}: {message}") from None
    return settings


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
    from ttt.files import check_writable_folder

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out}: exists and is a file; give a folder")
    check_writable_folder(out, flag)
    return out
