"""Eval fixtures: a writer for eval JSONL files (the waves and the tiny model are in tests/conftest.py)."""
from __future__ import annotations

import json

import pytest


@pytest.fixture
def write_jsonl():
    """Writer for eval files: dict rows as JSON, str rows verbatim (to plant malformed lines)."""

    def write(path, rows):
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        return path

    return write
