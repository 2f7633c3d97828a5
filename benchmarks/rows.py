"""What the resumable benchmark scripts share: the `ttt` command line and each run folder's budget card."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def ttt_command(*args: str) -> list[str]:
    """`ttt ARGS` with this interpreter, so a benchmark drives the same installation it imports."""
    return [sys.executable, "-m", "ttt.cli", *args]


def open_card(path: Path, budget: dict, fresh: dict) -> dict:
    """A run folder's card: written with `budget` and the `fresh` bookkeeping fields on first use, read
    back later. A folder trained under another budget is refused, because every row of one table must
    share its budget and a silent mix would pass for a comparison."""
    if path.is_file():
        card = json.loads(path.read_text())
        if {k: card.get(k) for k in budget} != budget:
            raise ValueError(f"{path.parent} was trained with {card}, not {budget}; "
                             "use another --runs folder to change the budget")
        return card
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {**budget, **fresh}
    save_card(path, card)
    return card


def save_card(path: Path, card: dict) -> None:
    path.write_text(json.dumps(card, indent=1))
