"""Hub conventions: a saved model laid out as a hub snapshot in a local HF cache loads by its id with the
network off; a missing id fails in one line saying why; the model card is written and kept."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants

from ttt.hub import read_card, resolve_dir, training_summary, write_model_card
from ttt.model import TtTModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SRC = Path(__file__).resolve().parents[2] / "src"


def as_hub_snapshot(model_dir: Path, cache: Path, repo_id: str) -> Path:
    """Lay `model_dir` out as `huggingface_hub` stores a downloaded snapshot (blobs + refs/main)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """A temporary HF cache, hub unreachable (a closed local port), offline mode off unless a test sets it."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return cache


def test_saved_model_has_a_model_card(make_model, tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path / "m")
    card = ModelCard.load(tmp_path / "m" / "README.md")
    assert card.data.library_name == "text-to-talk" and "ttt" in card.data.tags
    assert card.data.ttt["audio_codebook_size"] == model.config.audio_codebook_size
    assert card.data.ttt["parameters"] == sum(p.numel() for p in model.backbone.parameters())
    assert "No `decoding.json`" in card.text


def test_model_card_records_training_metrics_and_decoding(make_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/tokens/ relative to an empty folder: no corpus card to read
    directory = tmp_path / "m"
    make_model().save_pretrained(directory)
    (directory / "decoding.json").write_text(json.dumps({"steps": 4, "max_last_span": 75}))
    metrics = {"asr": {"n": 200, "wer": 0.0423, "cer": 0.04, "ci": {"wer": [0.028, 0.062], "cer": [0.02, 0.06]},
                       "n_scored": {"wer": 200, "cer": 200}},
               "text_qa": {"n": 120, "accuracy": 0.98, "ci": {"accuracy": [0.96, 0.99]}, "n_scored": {"accuracy": 120}},
               "skipped_lines": 0, "config": {"data": "data/tokens/eval_test.jsonl"}}
    training = training_summary({"data": {"train": "data/tokens/train.jsonl", "valid": None}, "max_steps": 5000,
                                 "batch_size": 8, "seed": 0}, steps=4200)
    write_model_card(directory, training=training, metrics=metrics)
    meta = read_card(directory)
    assert meta["decoding"] == {"steps": 4, "max_last_span": 75}
    assert meta["training"]["steps"] == 4200 and meta["training"]["data"] == {"train": "data/tokens/train.jsonl"}
    assert meta["evaluation"]["asr"]["wer"] == {"value": 0.0423, "ci": [0.028, 0.062], "n": 200}
    results = {(r["task"]["type"], r["metrics"][0]["type"]): r["metrics"][0]["value"]
               for r in meta["model-index"][0]["results"]}
    assert results[("automatic-speech-recognition", "wer")] == 0.0423
    assert results[("question-answering", "accuracy")] == 0.98
    text = (directory / "README.md").read_text()
    assert "| asr | wer | 0.0423 | [0.028, 0.062] | 200 |" in text and '"max_last_span": 75' in text
    # writing again (e.g. after `ttt export` adds decoding.json) keeps training and metrics
    write_model_card(directory)
    assert read_card(directory)["evaluation"] == meta["evaluation"]
    assert read_card(directory)["training"] == meta["training"]
    with pytest.raises(ValueError, match="none of the tasks"):
        write_model_card(directory, metrics={"skipped_lines": 0})


def test_hub_id_loads_from_the_cache_without_network(make_model, tmp_path, offline_cache, monkeypatch):
    model = make_model()
    model.save_pretrained(tmp_path / "m")
    snapshot = as_hub_snapshot(tmp_path / "m", offline_cache, "org/tiny-ttt")
    assert resolve_dir("org/tiny-ttt") == snapshot  # network off but not declared offline: the cache wins
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = TtTModel.from_pretrained("org/tiny-ttt")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_hub_id_with_env_vars_in_a_fresh_process(tiny_model_dir, tmp_path):
    """What a user does: HF_HUB_CACHE + HF_HUB_OFFLINE=1 in the environment, `SpeechLM.from_dir("org/name")`."""
    cache = tmp_path / "cache"
    as_hub_snapshot(tiny_model_dir, cache, "org/tiny-speech")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SRC),
           "OMP_NUM_THREADS": "1"}
    code = ("from ttt.speech import SpeechLM; lm = SpeechLM.from_dir('org/tiny-speech'); "
            "print(lm.model.config.audio_codebook_size, sum(p.numel() for p in lm.model.parameters()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = TtTModel.from_pretrained(tiny_model_dir)
    assert out.stdout.split() == [str(expected.config.audio_codebook_size),
                                  str(sum(p.numel() for p in expected.parameters()))]
    missing = subprocess.run([sys.executable, "-m", "ttt.cli", "asr", "--model", "org/not-cached",
                              str(SRC / "ttt" / "assets" / "demo" / "question.wav")],
                             env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"ttt asr: error: TtT model org/not-cached: neither a local folder nor in the Hugging Face cache ({cache}), "
        "and HF_HUB_OFFLINE=1 forbids downloading it"]


def test_missing_model_errors_say_why(offline_cache, monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^no TtT model in ./nowhere: no such folder$"):
        resolve_dir("./nowhere")
    with pytest.raises(FileNotFoundError, match="runs/r1/final: no such folder"):
        TtTModel.from_pretrained("runs/r1/final")
    with pytest.raises(FileNotFoundError) as err:
        resolve_dir("org/absent")
    assert "the hub cannot be reached" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1 forbids downloading it"):
        resolve_dir("org/absent")
    # a folder that exists is used as it is, even when its name is also a valid hub id
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_dir("org/name") == Path("org/name")


def test_model_card_cli_from_a_run_and_an_eval_report(make_model, tmp_path, capsys):
    from ttt.cli import main

    make_model().save_pretrained(tmp_path / "m")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {train: data/t/train.jsonl, valid: data/t/valid.jsonl}\nmax_steps: 100\n")
    (run / "log.jsonl").write_text('{"step": 10, "loss": 3.0}\n{"step": 60, "valid_loss": 2.0}\n')
    report = Path(__file__).resolve().parents[2] / "reports" / "candidate_r1"
    assert main(["model-card", str(tmp_path / "m"), "--run", str(run), "--eval", str(report),
                 "--name", "org/ttt-r1"]) == 0
    meta = read_card(tmp_path / "m")
    assert meta["model_name"] == "org/ttt-r1" and meta["training"]["steps"] == 60
    assert meta["evaluation"]["asr"]["wer"]["value"] == round(json.loads((report / "metrics.json").read_text())["asr"]["wer"], 4)
    assert main(["model-card", str(tmp_path / "m"), "--eval", str(tmp_path)]) == 1
    assert "metrics.json: no such file" in capsys.readouterr().err


def test_push_without_network_fails_in_one_line(make_model, tmp_path, offline_cache, monkeypatch, capsys):
    from ttt.cli import main

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    make_model().save_pretrained(tmp_path / "m")
    capsys.readouterr()
    assert main(["push", str(tmp_path / "m"), "org/tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ttt push: error: push to org/tiny: the hub cannot be reached")
    assert main(["push", str(tmp_path), "org/tiny"]) == 1
    assert "not a TtT model directory" in capsys.readouterr().err
