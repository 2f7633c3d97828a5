"""Non-finite gradients: a bad step is skipped instead of poisoning the weights; a run of them stops
training with a clear error and leaves the last checkpoint as it was."""
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ttt.training.loop
from train_toy import read_log, toy_config
from ttt.training.checkpoint import checkpoint_dirs
from ttt.model import TtTModel, TtTOutput
from ttt.training.loop import avoid_cudnn_attention, train


def poison_training_forwards(monkeypatch, bad: set[int]) -> None:
    """Make the loss NaN on the listed training forwards (1-based; evaluation forwards are not counted)."""
    forward, calls = TtTModel.forward, [0]

    def patched(self, *args, **kwargs) -> TtTOutput:
        out = forward(self, *args, **kwargs)
        if not self.training:
            return out
        calls[0] += 1
        if calls[0] not in bad:
            return out
        return TtTOutput(loss=out.loss * float("nan"), text_loss=out.text_loss, audio_loss=out.audio_loss,
                         logits=out.logits)

    monkeypatch.setattr(TtTModel, "forward", patched)


def test_a_non_finite_step_is_skipped_and_training_goes_on(tmp_path, monkeypatch, caplog):
    poison_training_forwards(monkeypatch, {3})
    with caplog.at_level(logging.WARNING, logger="ttt.training.loop"):
        out = train(toy_config(tmp_path, max_steps=6, save_interval=6))
    steps = {r["step"]: r for r in read_log(out) if "loss" in r}
    assert sorted(steps) == list(range(1, 7))
    assert steps[3]["grad_norm"] != steps[3]["grad_norm"], "the poisoned step logs its NaN gradient norm"
    assert all(steps[s]["grad_norm"] == steps[s]["grad_norm"] for s in (1, 2, 4, 5, 6))
    assert "step 3: non-finite gradient norm" in caplog.text
    weights = load_file(out / "final" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values()), "the skipped update left the weights finite"


def test_consecutive_non_finite_steps_stop_without_saving(tmp_path, monkeypatch):
    monkeypatch.setattr(ttt.training.loop, "MAX_SKIPPED_STEPS", 3)
    poison_training_forwards(monkeypatch, set(range(3, 100)))
    cfg = toy_config(tmp_path, max_steps=8, save_interval=1, keep_last=3)
    with pytest.raises(FloatingPointError, match=r"3 steps in a row \(to step 5\)"):
        train(cfg)
    assert [p.name for p in checkpoint_dirs(cfg.out_dir)] == ["step-00000002", "step-00000003", "step-00000004"]
    last = load_file(checkpoint_dirs(cfg.out_dir)[-1] / "model.safetensors")
    first = load_file(checkpoint_dirs(cfg.out_dir)[0] / "model.safetensors")
    assert all(torch.equal(last[k], first[k]) for k in first), "skipped steps do not change the weights"
    assert not (Path(cfg.out_dir) / "final").exists()


def test_training_keeps_sdpa_off_cudnn():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        avoid_cudnn_attention()
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
