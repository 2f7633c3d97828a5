"""Every ```python block of README.md and docs/*.md runs, so that a broken example fails the suite.

The blocks of one file run in order in one namespace (a later block may use an earlier one's names), in a
temporary working directory. A block preceded by `<!-- no-run: reason -->` is skipped; the reason must be
given, and such blocks should stay rare.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!--\s*no-run:(?P<reason>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, no-run reason or None) of each python block in `path`."""
    text = path.read_text()
    return [(text[:m.start("code")].count("\n") + 1, m["code"], m["reason"]) for m in BLOCK.finditer(text)]


def test_the_readme_has_python_examples():
    assert len(blocks(ROOT / "README.md")) >= 3


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    for line, code, reason in blocks(path):
        if reason is not None:
            assert reason.strip(), f"{path.name}:{line}: a no-run block must say why"
            continue
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as err:  # the file and line of the block, not just a traceback into exec
            raise AssertionError(f"{path.relative_to(ROOT)}: the python block at line {line} fails: {err!r}") from err


def test_no_run_marker_is_understood(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("<!-- no-run: needs a GPU -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n")
    assert [(reason and reason.strip()) for _, _, reason in blocks(doc)] == ["needs a GPU", None]
