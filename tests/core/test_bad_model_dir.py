"""A damaged model directory is a one-line error naming the file, before anything heavy is loaded."""
import shutil

import pytest

from ttt.cli import main
from ttt.model import TtTModel


@pytest.fixture
def saved(make_model, tmp_path):
    path = tmp_path / "good"
    make_model().save_pretrained(path)
    return path


def _damaged(saved, tmp_path, name, content):
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    path = bad / name
    if content is None:
        path.unlink()
    elif content == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_text(content)
    return bad


@pytest.mark.parametrize("name, content, message", [
    ("model.safetensors", "truncate", "model.safetensors: damaged or truncated weights"),
    ("model.safetensors", None, "no model.safetensors"),
    ("config.json", "{garbage", "config.json: not valid JSON"),
    ("config.json", "[]", "config.json: expected a JSON object"),
    ("config.json", "{}", "cannot load the backbone (config.json"),
    ("config.json", None, "no config.json"),
    ("ttt_config.json", "{garbage", "ttt_config.json: not valid JSON"),
    ("tokenizer.json", "{garbage", "tokenizer.json: not valid JSON"),
    ("tokenizer.json", "{}", "cannot load the tokenizer (tokenizer.json"),
    ("tokenizer_config.json", "[1, 2]", "tokenizer_config.json: expected a JSON object"),
])
def test_damaged_model_files_are_named(saved, tmp_path, name, content, message):
    bad = _damaged(saved, tmp_path, name, content)
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(")) as err:
        TtTModel.from_pretrained(bad)
    assert "\n" not in str(err.value)


def test_cli_reports_a_truncated_model_in_one_line(tiny_model_dir, eval_dir, tmp_path, capsys):
    bad = _damaged(tiny_model_dir, tmp_path, "model.safetensors", "truncate")
    rc = main(["asr", str(eval_dir / "wavs" / "q.wav"), "--model", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "model.safetensors: damaged or truncated weights" in err
    assert len(err.strip().splitlines()) == 1
