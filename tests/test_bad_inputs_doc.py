"""docs/bad_inputs.md promises that each of its rows is backed by a test: every row names one, and every
test it names exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = re.compile(r"`((?:[\w/]+\.py)?)::(\w+)`")


def test_every_row_names_a_test_that_exists():
    rows = [line for line in (ROOT / "docs" / "bad_inputs.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| **") and not line.startswith("| Input")]
    assert len(rows) > 50
    current = None
    for row in rows:
        names = TEST.findall(row)
        assert names, f"no test named in: {row[:80]}"
        for path, name in names:
            current = path or current
            assert current and f"def {name}(" in (ROOT / "tests" / current).read_text(), f"{current}::{name} missing"
