"""`max_minutes`: a wall-clock training budget that stops the run early, exports final/ and survives --resume."""
import json

import pytest

from train_toy import CONFIG, read_log, toy_config
from ttt.hub import read_card
from ttt.training.checkpoint import checkpoint_dirs
from ttt.model import TtTModel
from ttt.training.loop import train
from ttt.training.config import load_config

TINY = 1e-6  # minutes: spent after the first step


def _state(ckpt) -> dict:
    return json.loads((ckpt / "training_state" / "state.json").read_text())


def test_time_budget_stops_early_saves_and_exports(tmp_path, caplog):
    cfg = toy_config(tmp_path, max_steps=8, save_interval=4, eval_interval=4, max_minutes=TINY)
    with caplog.at_level("INFO", logger="ttt.training.loop"):
        out = train(cfg)
    log = read_log(out)
    assert [r["step"] for r in log if "loss" in r] == [1], "stops after the first step, long before max_steps"
    stop = [r for r in log if "stopped" in r]
    assert stop == [{"step": 1, "stopped": "max_minutes", "train_minutes": stop[0]["train_minutes"]}]
    assert stop[0]["train_minutes"] >= TINY
    assert [r["step"] for r in log if "valid_loss" in r] == [1], "the stopping step is validated like a last one"
    assert "time budget of 1e-06 min spent after step 1" in caplog.text
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000001"]
    state = _state(checkpoint_dirs(out)[-1])
    assert state["step"] == 1 and state["train_seconds"] >= stop[0]["train_minutes"] * 60 > 0
    assert state["config"]["max_minutes"] == TINY
    assert (out / "final" / "ttt_config.json").is_file()
    TtTModel.from_pretrained(out / "final")
    training = read_card(out / "final")["training"]  # the model card says what the model was trained on
    assert training["steps"] == 1 and training["data"]["train"] == cfg.data.train


def test_time_budget_clock_survives_resume(tmp_path):
    cfg = toy_config(tmp_path, max_steps=4, save_interval=1, eval_interval=10, max_minutes=TINY)
    out = train(cfg)
    spent = _state(checkpoint_dirs(out)[-1])["train_seconds"]
    final = (out / "final" / "model.safetensors").read_bytes()

    train(cfg, resume=True)  # the stored clock is already past the budget: no further step
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000001"]
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1]
    assert (out / "final" / "model.safetensors").read_bytes() == final
    assert read_card(out / "final")["training"]["steps"] == 1

    more = toy_config(tmp_path, max_steps=4, save_interval=1, eval_interval=10, max_minutes=60)
    train(more, resume=True)  # a larger budget goes on from the stored clock, up to max_steps
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2, 3, 4]
    assert not [r for r in read_log(out) if r["step"] > 1 and "stopped" in r]
    assert _state(checkpoint_dirs(out)[-1])["train_seconds"] > spent


def test_time_budget_config_and_flag(tmp_path):
    import argparse

    from ttt.cli import train as train_cli

    assert load_config(CONFIG, {"data.train": "x.jsonl"}).max_minutes is None
    assert load_config(CONFIG, {"data.train": "x.jsonl", "max_minutes": 2}).max_minutes == 2
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="max_minutes must be positive"):
            load_config(CONFIG, {"data.train": "x.jsonl", "max_minutes": bad})
    for bad in (True, "soon"):
        with pytest.raises(ValueError, match=f"max_minutes must be a number or null, got {bad!r}"):
            load_config(CONFIG, {"data.train": "x.jsonl", "max_minutes": bad})
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", "c.yaml", "--max-minutes", "0.5"])
    assert train_cli.overrides(args) == {"max_minutes": 0.5}
