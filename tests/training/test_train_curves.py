"""`ttt train` logs through accelerate's trackers into log.jsonl and leaves curves.png; TensorBoard joins
when it is installed."""
from __future__ import annotations

import matplotlib.image
import yaml

from train_toy import toy_config
from ttt.cli import main
from ttt.training.curves import read_log


def test_train_logs_through_trackers_and_leaves_curves(tmp_path):
    cfg = toy_config(tmp_path, max_steps=6, eval_interval=3, save_interval=6, log_interval=2)
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["train", "--config", str(tmp_path / "toy.yaml")]) == 0
    run = tmp_path / "run"
    records = read_log(run / "log.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "valid_loss" in r] == [3, 6]
    assert all({"text_loss", "audio_loss", "lr", "grad_norm"} <= r.keys() for r in records if "loss" in r)
    image = matplotlib.image.imread(run / "curves.png")
    assert image.shape[0] > 500 and image.shape[1] > 800 and image[..., :3].std() > 0.05  # drawn, not blank


def test_tensorboard_tracker_when_installed(tmp_path):
    """accelerate's TensorBoard tracker is added only when tensorboard can be imported."""
    import pytest
    from accelerate.utils import is_tensorboard_available

    from ttt.training.run_log import trackers
    from ttt.training.loop import train

    if not is_tensorboard_available():
        assert [t.name for t in trackers(tmp_path)] == ["jsonl"]
        pytest.skip("tensorboard not installed (optional: pip install 'text-to-talk[tensorboard]')")
    assert [getattr(t, "name", t) for t in trackers(tmp_path)] == ["jsonl", "tensorboard"]
    out = train(toy_config(tmp_path, max_steps=2, eval_interval=2, save_interval=2, log_interval=1))
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
