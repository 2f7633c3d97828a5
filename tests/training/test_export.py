"""`ttt export`: a checkpoint becomes a release directory that loads, decodes as it says, and is smaller."""
import json

import pytest
import torch
from safetensors import safe_open

from ttt.cli import main
from ttt.cli.model import parse_decoding
from ttt.training.export import export_model
from ttt.model import TtTModel
from ttt.config import DECODING_FILE
from ttt.speech import SpeechLM


def _checkpoint(tiny_model_dir, tmp_path):
    """A checkpoint-like directory: the model files plus a training_state/ that must not be exported."""
    ck = tmp_path / "step-00000100"
    ck.mkdir()
    for f in tiny_model_dir.iterdir():
        (ck / f.name).write_bytes(f.read_bytes())
    (ck / "training_state").mkdir()
    (ck / "training_state" / "state.json").write_text("{}")
    return ck


def test_float16_export_loads_as_float32_with_its_decoding(tiny_model_dir, tmp_path):
    ck = _checkpoint(tiny_model_dir, tmp_path)
    out = export_model(ck, tmp_path / "release", "float16", {"steps": 2, "max_last_span": 75})
    assert not (out / "training_state").exists()
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert (out / "model.safetensors").stat().st_size < 0.6 * (ck / "model.safetensors").stat().st_size
    assert json.loads((out / DECODING_FILE).read_text()) == {"max_last_span": 75, "steps": 2}

    lm = SpeechLM.from_dir(out)
    assert lm.generation == {"max_last_span": 75, "steps": 2}
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
    original = TtTModel.from_pretrained(ck).eval()
    ids = torch.tensor([[1, 5, 9, 30, 200]])
    with torch.no_grad():
        a = original.backbone(input_ids=ids).logits
        b = lm.model.backbone(input_ids=ids).logits
    torch.testing.assert_close(b, a, atol=2e-2, rtol=2e-2)


def test_bad_decoding_setting_fails_before_writing(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="stepz"):
        export_model(tiny_model_dir, tmp_path / "release", decoding={"stepz": 4})
    assert not (tmp_path / "release").exists()
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_decoding(["steps"])
    with pytest.raises(ValueError, match="new directory"):
        export_model(tiny_model_dir, tiny_model_dir)


def test_export_command(tiny_model_dir, tmp_path, capsys):
    rc = main(["export", str(tiny_model_dir), str(tmp_path / "r"), "--decoding", "steps=2",
               "--decoding", "stop_threshold=0.4"])
    assert rc == 0 and "exported" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / DECODING_FILE).read_text()) == {"steps": 2, "stop_threshold": 0.4}
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "r2")]) == 1


def test_several_sources_export_their_weight_average(tiny_model_dir, tmp_path, capsys):
    first = TtTModel.from_pretrained(tiny_model_dir)
    second = TtTModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in second.backbone.parameters():
            p.add_(torch.randn_like(p))
    second.save_pretrained(tmp_path / "b")
    assert main(["export", str(tiny_model_dir), str(tmp_path / "b"), str(tmp_path / "avg")]) == 0
    assert "the mean of 2 checkpoints" in capsys.readouterr().out
    averaged = TtTModel.from_pretrained(tmp_path / "avg").backbone.state_dict()
    a, b = first.backbone.state_dict(), second.backbone.state_dict()
    for name, weight in averaged.items():
        torch.testing.assert_close(weight, (a[name] + b[name]) / 2)


def test_averaging_refuses_a_different_model(tiny_model_dir, tmp_path):
    other = TtTModel.from_pretrained(tiny_model_dir)
    other.config.text_chunk += 1
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="not the same model"):
        export_model([tiny_model_dir, tmp_path / "other"], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()
