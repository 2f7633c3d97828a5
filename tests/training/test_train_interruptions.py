"""Interrupted and damaged runs: a torn log line, a truncated checkpoint, a full disk, two runs in one
folder and a resumed run with another architecture all end in a one-line message and lose nothing."""
import errno
import json
import logging

import pytest
import yaml

from train_toy import read_log, toy_config
from ttt.training.checkpoint import checkpoint_dirs
from ttt.training.loop import train

SETTINGS = dict(max_steps=12, save_interval=4, eval_interval=100, keep_last=3)


def _crashed_run(tmp_path, **overrides):
    """A run "killed" right after step 8: checkpoints 4 and 8 are on disk, steps 9-12 are not."""
    cfg = toy_config(tmp_path, **{**SETTINGS, **overrides})
    train(cfg, stop_after=8)
    assert [p.name for p in checkpoint_dirs(cfg.out_dir)] == ["step-00000004", "step-00000008"]
    return cfg


def _logged_steps(out):
    return [r["step"] for r in read_log(out) if "loss" in r]


def test_a_torn_last_log_line_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog):
    cfg = _crashed_run(tmp_path)
    log_file = cfg.out_dir + "/log.jsonl"
    with open(log_file, "a") as f:
        f.write('{"step": 9, "loss": 1.')  # killed mid-write
    with caplog.at_level(logging.WARNING):
        out = train(cfg, resume=True)
    assert f"{log_file}:" in caplog.text and "torn last line" in caplog.text
    assert _logged_steps(out) == list(range(1, 13))


def test_a_damaged_log_line_before_the_end_is_an_error_naming_file_and_line(tmp_path):
    cfg = _crashed_run(tmp_path)
    path = tmp_path / "run" / "log.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:10]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:3: damaged log line"):
        train(cfg, resume=True)


@pytest.mark.parametrize("name", ["model.safetensors", "training_state/optimizer.safetensors"])
def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path, caplog, name):
    cfg = _crashed_run(tmp_path)
    damaged = tmp_path / "run" / "checkpoints" / "step-00000008" / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with caplog.at_level(logging.INFO):
        out = train(cfg, resume=True)
    from ttt.training.checkpoint import verify_checkpoint

    assert "step-00000008 is damaged" in caplog.text and "resumed from" in caplog.text
    assert "step-00000004 at step 4" in caplog.text
    assert _logged_steps(out) == list(range(1, 13)), "steps 5-8 are trained again, each logged once"
    assert verify_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000008") is None, "rewritten whole"


def test_checkpoints_carry_a_manifest_of_their_files(tmp_path):
    from ttt.training.checkpoint import MANIFEST

    cfg = _crashed_run(tmp_path)
    ckpt = checkpoint_dirs(cfg.out_dir)[-1]
    files = json.loads((ckpt / MANIFEST).read_text())["files"]
    assert files["model.safetensors"] == (ckpt / "model.safetensors").stat().st_size
    assert "training_state/state.json" in files


def test_no_complete_checkpoint_is_a_one_line_error(tmp_path):
    cfg = _crashed_run(tmp_path)
    for ckpt in checkpoint_dirs(cfg.out_dir):
        (ckpt / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="none of the 2 checkpoints is complete"):
        train(cfg, resume=True)


def test_a_full_disk_is_a_one_line_error_and_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    import ttt.training.checkpoint

    cfg = toy_config(tmp_path, **SETTINGS)
    real = ttt.training.checkpoint.save_file

    def full_at_step_8(tensors, path, *args, **kwargs):
        if "step-00000008" in str(path) and "optimizer" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ttt.training.checkpoint, "save_file", full_at_step_8)
    with pytest.raises(OSError, match="cannot write checkpoint step-00000008 .*No space left on device") as err:
        train(cfg)
    assert "\n" not in str(err.value) and "about" in str(err.value)
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp*")), "the partial checkpoint is removed"
    assert [p.name for p in checkpoint_dirs(cfg.out_dir)] == ["step-00000004"]


def test_a_second_run_on_the_same_folder_refuses_at_once(tmp_path):
    from ttt.training.checkpoint import run_lock

    cfg = toy_config(tmp_path, **SETTINGS)
    with run_lock(cfg.out_dir):  # another `ttt train --out` holds the folder
        with pytest.raises(ValueError, match="in use by another training run"):
            train(cfg)
    assert not (tmp_path / "run" / "log.jsonl").exists(), "the refused run wrote nothing"
    train(toy_config(tmp_path, **{**SETTINGS, "max_steps": 4}))  # the lock went with its holder


def test_resume_refuses_a_changed_architecture(tmp_path):
    cfg = _crashed_run(tmp_path)
    before = (tmp_path / "run" / "config.yaml").read_text()
    changed = toy_config(tmp_path, **{**SETTINGS, "backbone.hidden_size": 64})
    with pytest.raises(ValueError, match=r"backbone.hidden_size=32 \(now 64\)"):
        train(changed, resume=True)
    assert (tmp_path / "run" / "config.yaml").read_text() == before
    assert yaml.safe_load(before)["backbone"]["hidden_size"] == 32


def test_cli_second_run_and_changed_architecture_are_one_line_errors(tmp_path, capsys):
    from ttt.cli import main
    from ttt.training.checkpoint import run_lock

    cfg = toy_config(tmp_path, **SETTINGS)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    with run_lock(cfg.out_dir):
        assert main(["train", "--config", str(config)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("ttt train: error: ")
    assert "in use by another training run" in errors[0]
    train(cfg, stop_after=4)
    assert main(["train", "--config", str(config), "--resume", "--set", "backbone.hidden_size=128"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "ttt train: error: --resume: " in errors[0] and "backbone.hidden_size=32 (now 128)" in errors[0]


def test_every_checkpoint_file_reaches_the_disk_before_the_manifest_and_the_rename(tmp_path, monkeypatch):
    import os

    import ttt.training.checkpoint
    from ttt.training.checkpoint import MANIFEST

    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(ttt.training.checkpoint.os, "fsync", recording_fsync)
    cfg = toy_config(tmp_path, **{**SETTINGS, "max_steps": 4})
    train(cfg)
    tmp = str(tmp_path / "run" / "checkpoints" / ".tmp-step-00000004")
    in_tmp = [p.removeprefix(tmp + "/") for p in synced if p.startswith(tmp + "/")]
    manifest = in_tmp.index(MANIFEST)
    assert {"model.safetensors", "training_state/optimizer.safetensors", "training_state/state.json"} <= set(in_tmp[:manifest])
    assert str(tmp_path / "run" / "checkpoints") in synced[synced.index(tmp + "/" + MANIFEST):], "the rename is flushed"


def test_a_run_that_fails_before_writing_leaves_no_folder_behind(tmp_path):
    cfg = toy_config(tmp_path, **{**SETTINGS, "data.train": str(tmp_path / "missing.jsonl")})
    with pytest.raises((FileNotFoundError, ValueError)):
        train(cfg)
    assert not (tmp_path / "run").exists()
