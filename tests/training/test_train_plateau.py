"""`early_stop_patience`: training stops once the validation loss has plateaued, exports final/ and the
plateau tracker survives --resume (the reproduction study trains each system until its loss plateaus)."""
import json

import pytest

from train_toy import CONFIG, read_log, toy_config
from ttt.hub import read_card
from ttt.training.checkpoint import checkpoint_dirs
from ttt.training.config import load_config
from ttt.training.loop import Plateau, train

NEVER = 100.0  # a min_delta no validation loss can improve by: every validation after the first counts


def test_plateau_counts_validations_without_improvement():
    p = Plateau(patience=2)
    assert [p.update(x) for x in (3.0, 2.0, 2.5, 2.1)] == [False, False, False, True]
    assert p.best == 2.0 and p.since == 2
    p = Plateau(patience=2, min_delta=0.2)
    assert [p.update(x) for x in (3.0, 2.0, 1.9, 1.7, 1.6, 1.65)] == [False, False, False, False, False, True]
    assert p.best == 1.7, "1.9 and 1.6 were not better by more than 0.2"
    assert p.state_dict() == {"best": 1.7, "since": 2}


def test_plateau_stops_early_saves_and_exports(tmp_path, caplog):
    cfg = toy_config(tmp_path, max_steps=20, eval_interval=2, save_interval=10, early_stop_patience=1,
                     early_stop_min_delta=NEVER)
    with caplog.at_level("INFO", logger="ttt.training.loop"):
        out = train(cfg)
    log = read_log(out)
    assert [r["step"] for r in log if "valid_loss" in r] == [2, 4], "the first validation sets the best"
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
    stop = [r for r in log if "stopped" in r]
    assert stop == [{"step": 4, "stopped": "plateau", "best_valid_loss": stop[0]["best_valid_loss"]}]
    assert "stopping after step 4" in caplog.text
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000004"], "the stopping step is saved"
    assert read_card(out / "final")["training"]["steps"] == 4
    final = (out / "final" / "model.safetensors").read_bytes()
    train(cfg, resume=True)  # it had stopped: no further step, the same final model
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2, 3, 4]
    assert (out / "final" / "model.safetensors").read_bytes() == final


def test_plateau_tracker_survives_an_interrupted_run(tmp_path):
    cfg = toy_config(tmp_path, max_steps=20, eval_interval=2, save_interval=2, early_stop_patience=2,
                     early_stop_min_delta=NEVER)
    out = train(cfg, stop_after=5)  # validations at 2 (best) and 4 (one without improvement), saved at 4
    state = json.loads((checkpoint_dirs(out)[-1] / "training_state" / "state.json").read_text())
    assert state["step"] == 4 and state["plateau"]["since"] == 1
    train(cfg, resume=True)  # a fresh tracker would take step 6 as its first best and run on to step 10
    stop = [r for r in read_log(out) if "stopped" in r]
    assert [r["step"] for r in stop] == [6] and stop[0]["stopped"] == "plateau"


def test_plateau_settings_are_checked():
    assert load_config(CONFIG, {"data.train": "x.jsonl"}).early_stop_patience is None
    ok = load_config(CONFIG, {"data.train": "x.jsonl", "data.valid": "v.jsonl", "early_stop_patience": 3})
    assert ok.early_stop_patience == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match="early_stop_patience must be a positive number of validations"):
            load_config(CONFIG, {"data.train": "x.jsonl", "data.valid": "v.jsonl", "early_stop_patience": bad})
    with pytest.raises(ValueError, match="early_stop_patience needs validation data"):
        load_config(CONFIG, {"data.train": "x.jsonl", "data.valid": None, "early_stop_patience": 3})
    with pytest.raises(ValueError, match="early_stop_min_delta must be >= 0"):
        load_config(CONFIG, {"data.train": "x.jsonl", "early_stop_min_delta": -0.1})
