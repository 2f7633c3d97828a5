"""File helpers every layer shares: directories published atomically with ordinary modes, and JSONL
reading that names the bad line.

Standard library only and no `ttt` import, so that any module (audio included) may import it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def publish_modes(directory: Path) -> None:
    """Give a written directory the modes of an ordinary `cp`: a temporary directory (and files written
    through a temporary file, as safetensors does) come out owner-only, which would hide a shared model
    from everyone else on the machine."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def replace_dir(finished: Path, target: Path) -> None:
    """Put the finished directory `finished` in place of `target` (which may not exist): the old one is
    moved aside first, so that `target` is never half written and a failed swap leaves the old one
    recoverable next to it."""
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    finished.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def publishing(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory beside `target` to write into; on success it replaces `target` with the
    modes of an ordinary copy, on error it is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        publish_modes(tmp)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(path: str | os.PathLike, on_error: Callable[[str], None] | None = None) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of a JSONL file. A malformed line raises a ValueError
    naming `file:line` and the parser's reason, or, with `on_error`, is passed to it as that message and
    skipped."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as err:
                message = f"{path}:{n}: invalid JSON: {err.msg} (column {err.colno})"
                if on_error is None:
                    raise ValueError(message) from None
                on_error(message)


def check_writable_folder(target: Path, flag: str) -> None:
    """Refuse, before any work, an output `target` whose nearest existing ancestor (where missing folders
    would be created) is a file or cannot be written; `flag` names the option in the one-line message."""
    folder = target if target.is_dir() else target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {target}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {target}: cannot write into {folder} (permission denied)")
