"""Training checkpoints: model weights + everything needed to continue the exact same run.

Layout of `OUT/checkpoints/step-00000100/`:
- full fine-tuning: the `TtTModel.save_pretrained` files (the directory loads with `from_pretrained`);
  with LoRA: `trainable.safetensors` (adapter and token rows), tokenizer and `ttt_config.json`;
- `training_state/`: `optimizer.safetensors` + `optimizer.json` (tensors / the rest of the AdamW state),
  `state.json` (step, scheduler, data sampler, python + numpy RNG) and `rng-rank{R}.safetensors`
  (torch CPU/CUDA RNG per process). Under FSDP / DeepSpeed the sharded model and optimizer go through
  `accelerator.save_state` instead (which pickles), as only the engine knows its shards.

A checkpoint is written into a hidden temporary directory, flushed to disk (fsync), listed in
`checkpoint.json` (every file with its size, written last) and renamed into place, so a directory named
`step-*` is complete when written; older ones beyond `keep_last` are removed afterwards, except every
`keep_every`-th step's, which stay for checkpoint averaging over the whole run (`ttt export A B … OUT`).
A checkpoint damaged later (a truncated copy, a full disk) fails `verify_checkpoint`, and `--resume` falls
back to the newest one that passes. `run_lock` keeps two runs out of one output directory.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ttt.files import publish_modes, replace_dir

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"step-(\d+)")
MANIFEST = "checkpoint.json"  # written last: every file of the checkpoint with its size
LOCK_FILE = ".lock"
SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _saved_steps(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as (step, directory), oldest first."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.fullmatch(p.name)) and p.is_dir())


def checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    return [p for _, p in _saved_steps(out_dir)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(out_dir)
    return dirs[-1] if dirs else None


def verify_checkpoint(directory: Path) -> str | None:
    """Why checkpoint `directory` cannot be resumed from (a missing or truncated file), or None if it can.

    The sizes in `checkpoint.json` catch truncation; every safetensors header and JSON file is also read,
    which covers checkpoints written before the manifest existed."""
    manifest = directory / MANIFEST
    if manifest.is_file():
        try:
            files = json.loads(manifest.read_text())["files"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return f"{MANIFEST} is damaged"
        for name, size in files.items():
            path = directory / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} of its {size} bytes"
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory)
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt"):
                    pass
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except (SafetensorError, OSError, ValueError) as err:
            return f"{name} is unreadable ({' '.join(str(err).split())})"
    if not (directory / "training_state" / "state.json").is_file():
        return "training_state/state.json is missing"
    return None


def resumable_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest checkpoint that `verify_checkpoint` accepts; each newer, damaged one is named in a warning.

    None when the run has no checkpoint; a ValueError when it has some but none is complete."""
    dirs = checkpoint_dirs(out_dir)
    for directory in reversed(dirs):
        problem = verify_checkpoint(directory)
        if problem is None:
            return directory
        log.warning("checkpoint %s is damaged (%s): skipping it for an older one", directory, problem)
    if dirs:
        raise ValueError(f"{Path(out_dir) / 'checkpoints'}: none of the {len(dirs)} checkpoints is complete "
                         f"(newest: {dirs[-1].name}, {verify_checkpoint(dirs[-1])}); cannot resume")
    return None


@contextmanager
def run_lock(out_dir: str | Path, active: bool = True) -> Iterator[None]:
    """Hold `OUT/.lock` (an advisory `flock`) for the duration of a run, so that a second `ttt train --out`
    on the same folder stops at once instead of interleaving checkpoints and log lines with the first.

    The lock dies with its process (kill -9 included), so a crashed run never blocks its own `--resume`.
    `active=False` (processes other than the main one) holds nothing."""
    if not active:
        yield
        return
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(f"{out} is in use by another training run (pid {holder} holds {path}); "
                             "wait for it or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
        if created and [p.name for p in out.iterdir()] == [LOCK_FILE]:  # a run that failed before writing anything
            path.unlink(missing_ok=True)
            out.rmdir()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal(directory: Path) -> None:
    """Flush every file of a finished checkpoint to disk, then write its manifest (flushed too): a
    directory whose manifest lists sizes its files have was completely written."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            _fsync(path)
            files[str(path.relative_to(directory))] = path.stat().st_size
    manifest = directory / MANIFEST
    manifest.write_text(json.dumps({"files": files}, indent=1))
    _fsync(manifest)
    for sub in {p.parent for p in directory.rglob("*")} | {directory}:
        _fsync(sub)


def _size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def is_lora_checkpoint(directory: Path) -> bool:
    return (directory / "trainable.safetensors").is_file()


def save_model(accelerator: Accelerator, model, directory: Path) -> None:
    """The TtT model directory layout from a (possibly wrapped or sharded) model, written by the main process."""
    unwrapped = accelerator.unwrap_model(model)
    state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        unwrapped.backbone.save_pretrained(directory, state_dict=backbone_state)
        unwrapped.tokenizer.save_pretrained(directory)
        unwrapped.config.save(directory)
        publish_modes(directory)


def _save_trainable(accelerator: Accelerator, model, directory: Path) -> None:
    unwrapped = accelerator.unwrap_model(model)
    state = accelerator.get_state_dict(model)  # a collective under FSDP / DeepSpeed: every process calls it
    if accelerator.is_main_process:
        names = {n for n, p in unwrapped.named_parameters() if p.requires_grad}
        save_file({n: state[n].contiguous() for n in sorted(names)}, directory / "trainable.safetensors")
        unwrapped.tokenizer.save_pretrained(directory)
        unwrapped.config.save(directory)


def load_trainable(model, directory: Path) -> None:
    """Load LoRA-run weights saved by a checkpoint into a model wrapped the same way."""
    state = load_file(directory / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in state)
    unknown = sorted(set(state) - set(params))
    if missing or unknown:
        raise ValueError(f"{directory}: trainable weights do not match the model (missing {missing[:3]}, unknown {unknown[:3]})")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def _optimizer_files(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.contiguous()
            else:
                rest["state"].setdefault(str(idx), {})[key] = value
    return tensors, rest


def _load_optimizer(optimizer, directory: Path) -> None:
    rest = json.loads((directory / "optimizer.json").read_text())
    state: dict[int, dict] = {int(k): dict(v) for k, v in rest["state"].items()}
    for name, tensor in load_file(directory / "optimizer.safetensors").items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def _rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    small = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return small, tensors


def _set_rng_state(small: dict, tensors: dict[str, torch.Tensor]) -> None:
    version, state, gauss = small["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, *rest = small["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    accelerator: Accelerator,
    model,
    optimizer,
    out_dir: str | Path,
    step: int,
    state: dict,
    lora: bool,
    keep_last: int,
    keep_every: int | None = None,
) -> Path:
    """Write checkpoint `step` atomically; `state` (JSON) holds the scheduler, sampler and step."""
    root = Path(out_dir) / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    previous = latest_checkpoint(out_dir)
    try:
        _write_checkpoint(accelerator, model, optimizer, tmp, step, state, lora)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        need = f"; one checkpoint takes about {_size_mb(previous):.0f} MB" if previous is not None else ""
        raise OSError(err.errno, f"cannot write checkpoint {final.name} in {root}: {err.strerror or err}"
                      f"{need} (a save needs room for keep_last + 1 of them); nothing partial was left") from None
    if accelerator.is_main_process:
        replace_dir(tmp, final)
        _fsync(root)
        for old_step, old in _saved_steps(out_dir)[:-keep_last]:
            if keep_every is None or old_step % keep_every:
                shutil.rmtree(old, ignore_errors=True)
        log.info("saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def _write_checkpoint(accelerator: Accelerator, model, optimizer, tmp: Path, step: int, state: dict, lora: bool) -> None:
    """Every file of checkpoint `step` into `tmp`, flushed and sealed with its manifest."""
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "training_state").mkdir(parents=True)
    accelerator.wait_for_everyone()
    train_dir = tmp / "training_state"
    sharded = accelerator.distributed_type in SHARDED
    if sharded:
        accelerator.save_state(str(train_dir / "accelerate"))
    if lora:
        _save_trainable(accelerator, model, tmp)
    else:
        save_model(accelerator, model, tmp)
    small, tensors = _rng_state()
    save_file(tensors, train_dir / f"rng-rank{accelerator.process_index}.safetensors")
    if accelerator.is_main_process:
        if not sharded:
            tensors, rest = _optimizer_files(optimizer)
            save_file(tensors, train_dir / "optimizer.safetensors")
            (train_dir / "optimizer.json").write_text(json.dumps(rest))
        payload = {**state, "step": step, "rng": small, "processes": accelerator.num_processes}
        (train_dir / "state.json").write_text(json.dumps(payload))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _seal(tmp)


def load_training_state(accelerator: Accelerator, optimizer, directory: Path) -> dict:
    """Restore optimizer and RNG states from checkpoint `directory`; return its `state.json`."""
    train_dir = directory / "training_state"
    state = json.loads((train_dir / "state.json").read_text())
    if state["processes"] != accelerator.num_processes:
        log.warning("checkpoint was written by %d process(es), resuming with %d: RNG streams differ",
                    state["processes"], accelerator.num_processes)
    if accelerator.distributed_type in SHARDED:
        accelerator.load_state(str(train_dir / "accelerate"))
    else:
        _load_optimizer(optimizer, train_dir)
    rng_file = train_dir / f"rng-rank{accelerator.process_index}.safetensors"
    if not rng_file.is_file():
        rng_file = train_dir / "rng-rank0.safetensors"
    _set_rng_state(state["rng"], load_file(rng_file))
    return state
