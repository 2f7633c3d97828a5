"""A benchmark run folder keeps its budget: a second use with another budget is refused."""
import json

import pytest

from benchmarks.rows import open_card, save_card


def test_card_is_created_then_read_back_and_guards_its_budget(tmp_path):
    path = tmp_path / "run" / "card.json"
    card = open_card(path, {"steps": 10, "seed": 0}, {"train_s": 0.0})
    assert card == {"steps": 10, "seed": 0, "train_s": 0.0} and json.loads(path.read_text()) == card
    card["train_s"] = 5.0
    save_card(path, card)
    assert open_card(path, {"steps": 10, "seed": 0}, {"train_s": 0.0})["train_s"] == 5.0
    with pytest.raises(ValueError, match="was trained with"):
        open_card(path, {"steps": 20, "seed": 0}, {"train_s": 0.0})
