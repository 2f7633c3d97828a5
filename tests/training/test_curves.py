"""Training curves: `ttt report-run` draws log.jsonl; bad logs are one-line errors naming file and line;
the JSONL tracker and its resume rule (the training run itself: tests/train/test_train_curves.py)."""
from __future__ import annotations

import json

import pytest

from ttt.cli import main
from ttt.training.curves import plot_run, read_log
from ttt.training.run_log import JSONLTracker, hparams, keep_log_until


def test_report_run_cli_and_bad_logs(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": s, "loss": 5.0 / s, "text_loss": 3.0 / s, "audio_loss": 2.0 / s, "lr": 1e-3 * min(1, s / 10)}
             for s in range(1, 41)]
    lines += [{"step": 20, "valid_loss": 0.4, "valid_text_loss": 0.2, "valid_audio_loss": 0.2},
              {"step": 40, "stopped": "max_minutes", "train_minutes": 1.0}]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["report-run", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000
    assert capsys.readouterr().out.strip() == str(tmp_path / "c.png")
    assert plot_run(run) == run / "curves.png"

    (run / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\nnot json\n')
    assert main(["report-run", str(run)]) == 1
    assert f"{run / 'log.jsonl'}:2: not JSON" in capsys.readouterr().err
    (run / "log.jsonl").write_text('{"loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"log.jsonl:1: expected an object with an integer \"step\""):
        plot_run(run)
    (run / "log.jsonl").write_text('{"step": 5, "valid_loss": 1.0}\n')
    with pytest.raises(ValueError, match="no training-loss record yet"):
        plot_run(run)
    with pytest.raises(FileNotFoundError, match="no such file"):
        plot_run(tmp_path / "nothing")


def test_jsonl_tracker_resume_and_hparams(tmp_path):
    tracker = JSONLTracker(tmp_path)
    for step in (1, 2, 3):
        tracker.log({"loss": 1.0 / step}, step=step)
    keep_log_until(tmp_path, 2)  # resuming from step 2's checkpoint drops what step 3 logged
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [1, 2]
    keep_log_until(tmp_path, None)  # a new run starts afresh
    assert not (tmp_path / "log.jsonl").exists()
    flat = hparams({"optim": {"lr": 1e-3, "betas": (0.9, 0.95)}, "max_minutes": None, "data": {"train": "t.jsonl"}})
    assert flat == {"optim.lr": 1e-3, "optim.betas": "[0.9, 0.95]", "max_minutes": "null", "data.train": "t.jsonl"}
