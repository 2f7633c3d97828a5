"""The training loop end to end on a tiny model: loss falls, resume is exact, modes, packing, CLI, config."""
import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from train_toy import CONFIG, read_log, toy_config, write_toy
from ttt.training.checkpoint import checkpoint_dirs
from ttt.model import TtTModel
from ttt.training.loop import lr_factor, train
from ttt.training.config import load_config


def _steps(log):
    return {r["step"]: r for r in log if "loss" in r}


def test_tiny_model_learns_and_writes_checkpoints(tmp_path):
    cfg = toy_config(tmp_path, max_steps=24, eval_interval=8, save_interval=8, keep_last=2)
    out = train(cfg)
    log = read_log(out)
    steps = _steps(log)
    assert sorted(steps) == list(range(1, 25))
    first = sum(steps[s]["text_loss"] for s in (1, 2, 3)) / 3
    last = sum(steps[s]["text_loss"] for s in (22, 23, 24)) / 3
    assert last < first - 1.0, (first, last)
    evals = [r for r in log if "valid_loss" in r]
    assert [r["step"] for r in evals] == [8, 16, 24]
    assert evals[-1]["valid_loss"] < evals[0]["valid_loss"]
    assert all(r["valid_audio_loss"] > 0 for r in evals), "validation always measures the audio loss"
    assert any(steps[s]["audio_loss"] > 0 for s in steps) and any(steps[s]["audio_loss"] == 0 for s in steps)
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000016", "step-00000024"]
    assert not list((out / "checkpoints").glob(".tmp*")), "no temporary directories left behind"
    state = json.loads((out / "checkpoints" / "step-00000024" / "training_state" / "state.json").read_text())
    assert state["step"] == 24 and state["sampler"]["batch_size"] == 4
    weights = out / "checkpoints" / "step-00000024" / "model.safetensors"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(weights.stat().st_mode) == 0o666 & ~umask, "the modes a plain copy would get"
    model = TtTModel.from_pretrained(out / "final")
    ckpt = TtTModel.from_pretrained(out / "checkpoints" / "step-00000024")
    for (name, a), (_, b) in zip(model.state_dict().items(), ckpt.state_dict().items()):
        assert torch.equal(a, b), name


def test_keep_every_spares_checkpoints_from_rotation_for_averaging(tmp_path):
    cfg = toy_config(tmp_path, max_steps=10, eval_interval=10, save_interval=2, keep_last=1, keep_every=4)
    out = train(cfg)
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000004", "step-00000008", "step-00000010"]


def test_resume_continues_the_exact_loss_curve(tmp_path):
    settings = dict(max_steps=10, save_interval=4, eval_interval=3, batch_size=2, grad_accum=2)
    full = train(toy_config(tmp_path / "a", **settings))
    interrupted = toy_config(tmp_path / "b", **settings)
    train(interrupted, stop_after=6)  # "crash" after step 6: steps 5-6 are lost, step 4 is on disk
    assert [p.name for p in checkpoint_dirs(interrupted.out_dir)] == ["step-00000004"]
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(interrupted)
    resumed = train(interrupted, resume=True)
    a, b = read_log(full), read_log(resumed)
    strip = lambda log: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in log]
    assert strip(a) == strip(b), "losses, lr, grad norms and validation losses must match step by step"
    wa = load_file(full / "final" / "model.safetensors")
    wb = load_file(resumed / "final" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("mode", ["ar", "nar"])
def test_baseline_modes_train(tmp_path, mode):
    out = train(toy_config(tmp_path, max_steps=3, save_interval=10, eval_interval=10, **{"ttt.mode": mode}))
    steps = _steps(read_log(out))
    if mode == "ar":
        assert all(r["audio_loss"] == 0 and r["text_loss"] > 0 for r in steps.values())
    else:
        assert all(r["text_loss"] == 0 for r in steps.values()) and any(r["audio_loss"] > 0 for r in steps.values())
    assert TtTModel.from_pretrained(out / "final").config.mode == mode


def test_packing_and_gradient_checkpointing(tmp_path):
    plain = train(toy_config(tmp_path / "a", max_steps=2, save_interval=10, eval_interval=10))
    ckpt = train(toy_config(tmp_path / "b", max_steps=2, save_interval=10, eval_interval=10,
                            gradient_checkpointing=True))
    for s in (1, 2):
        assert _steps(read_log(ckpt))[s]["loss"] == pytest.approx(_steps(read_log(plain))[s]["loss"], abs=1e-5)
    packed = train(toy_config(tmp_path / "c", max_steps=2, save_interval=10, eval_interval=10,
                              **{"data.pack": True, "ttt.max_length": 512}))
    assert all(r["loss"] > 0 for r in _steps(read_log(packed)).values())


def test_cli_trains_with_overrides(tmp_path):
    from ttt.cli.train import main

    train_file = write_toy(tmp_path / "t.jsonl", 12)
    args = ["--config", str(CONFIG), "--out", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "4",
            "--mode", "ar", "--precision", "fp32", "--set", f"data.train={train_file}", "--set", "data.valid=null",
            "--set", "data.valid_fraction=0.25", "--set", "backbone.hidden_size=32", "--set", "backbone.layers=1",
            "--set", "ttt.audio_codebook_size=64", "--set", "backbone.tokenizer_vocab_size=300"]
    assert main(args) == 0
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "mode: ar" in saved and "max_steps: 2" in saved
    assert TtTModel.from_pretrained(tmp_path / "run" / "final").config.mode == "ar"
    assert main(args[:-2] + ["--set", "backbone.hidden=3"]) == 1
    assert main(["--config", str(CONFIG), "--set", "data.train=/nonexistent.jsonl"]) == 1


def test_config_validation_and_schedule(tmp_path):
    cfg = load_config(CONFIG)
    assert cfg.backbone.source == "tiny" and cfg.ttt["mode"] == "ttt" and cfg.optim.betas == (0.9, 0.95)
    with pytest.raises(ValueError, match="unknown keys \\['optim.nope'\\]"):
        load_config(CONFIG, {"optim.nope": 1})
    with pytest.raises(ValueError, match="mode must be one of"):
        load_config(CONFIG, {"ttt.mode": "xyz"})
    with pytest.raises(ValueError, match="needs backbone.path"):
        load_config(CONFIG, {"backbone.source": "hf"})
    with pytest.raises(ValueError, match="data.pack needs ttt.max_length"):
        load_config(CONFIG, {"data.pack": True, "ttt.max_length": None})
    with pytest.raises(ValueError, match="keep_every \\(300\\) must be a multiple of save_interval \\(200\\)"):
        load_config(CONFIG, {"save_interval": 200, "keep_every": 300})
    with pytest.raises(ValueError, match="keep_every must be a positive step count"):
        load_config(CONFIG, {"keep_every": 0})
    cfg = load_config(CONFIG, {"max_steps": 110, "optim.warmup_steps": 10, "optim.min_lr_ratio": 0.1})
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero3", "DEEPSPEED")])
def test_accelerate_configs_parse(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIG.parent / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"


def test_train_subcommand_registers():
    import argparse

    from ttt.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", "c.yaml", "--gguf-file", "/m/x.gguf", "--lora", "--resume"])
    assert args.func is train_cli.run and args.resume
    assert train_cli.overrides(args) == {"backbone.gguf_file": "/m/x.gguf", "backbone.source": "hf",
                                         "backbone.path": ".", "lora.enabled": True}


def test_several_train_files_train_as_their_concatenation(tmp_path):
    """`data.train: [a, b]` is the same run as one file holding a then b; each file's build card is checked."""
    settings = dict(max_steps=4, eval_interval=4, save_interval=4)
    whole = toy_config(tmp_path / "one", n_train=24, **settings)
    lines = (tmp_path / "one" / "train.jsonl").read_text().splitlines(keepends=True)
    parts = tmp_path / "parts"
    (parts / "b").mkdir(parents=True)
    (parts / "a.jsonl").write_text("".join(lines[:10]))
    (parts / "b" / "b.jsonl").write_text("".join(lines[10:]))
    split = toy_config(tmp_path / "two", n_train=24, **settings,
                       **{"data.train": [str(parts / "a.jsonl"), str(parts / "b" / "b.jsonl")]})
    assert split.data.train_files == [str(parts / "a.jsonl"), str(parts / "b" / "b.jsonl")]
    losses = [[r["loss"] for r in read_log(train(cfg)) if "loss" in r] for cfg in (whole, split)]
    assert losses[0] == losses[1]
    (parts / "b" / "build_card.json").write_text(json.dumps({"text_chunk": 7}))
    split.out_dir = str(tmp_path / "three")
    with pytest.raises(ValueError, match="text_chunk=7"):
        train(split)
