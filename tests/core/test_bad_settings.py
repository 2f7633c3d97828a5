"""Bad settings in any source (Python, decoding.json, ttt_config.json, YAML, --set) are one-line errors
that name the setting and where it came from, raised when the setting is made."""
import json
from pathlib import Path

import pytest

from ttt.cli import main
from ttt.config import DECODING_FILE, GenerationConfig, TtTConfig, load_decoding
from ttt.training.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -3}, "steps must be positive, got -3"),
    ({"steps": "4"}, "steps must be an integer, got '4'"),
    ({"stop_threshold": 2.0}, r"stop_threshold must be in \(0, 1\]"),
    ({"top_p": 0.0}, "top_p"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"cfg_context": "everything"}, "cfg_context must be one of \\('prompt', 'all'\\), got 'everything'"),
    ({"nar_length": 0}, "nar_length must be positive, got 0"),
])
def test_generation_config_is_validated_on_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


@pytest.mark.parametrize("content, message", [
    ({"stepz": 13}, r"decoding.json: unknown decoding settings \['stepz'\]"),
    ({"steps": "many"}, "decoding.json: steps must be an integer, got 'many'"),
    ({"steps": -1}, "decoding.json: steps must be positive"),
    ({"cfg_context": "user"}, "decoding.json: cfg_context must be one of"),
    ("{not json", "decoding.json: malformed JSON"),
])
def test_bad_decoding_json_names_the_file_and_the_key(tmp_path, content, message):
    (tmp_path / DECODING_FILE).write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=message):
        load_decoding(tmp_path)


@pytest.mark.parametrize("content, message", [
    ("{oops", "ttt_config.json: not valid JSON"),
    ('{"text_chunk": "thirteen"}', "ttt_config.json: text_chunk must be an integer, got 'thirteen'"),
    ('{"chunk": 13}', r"ttt_config.json: unknown setting\(s\) \['chunk'\]"),
])
def test_bad_ttt_config_json_names_the_file(tmp_path, content, message):
    (tmp_path / "ttt_config.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        TtTConfig.load(tmp_path)


@pytest.mark.parametrize("overrides, message", [
    ({"max_steps": "abc"}, "--set max_steps must be an integer, got 'abc'"),
    ({"optim.lr": "fast"}, "--set optim.lr must be a number, got 'fast'"),
    ({"backbone.hidden_size": 1.5}, "--set backbone.hidden_size must be an integer"),
    ({"ttt.bogus": 1}, r"unknown setting\(s\) \['bogus'\]"),
    ({"ttt.text_chunk": "x"}, "text_chunk must be an integer, got 'x'"),
    ({"ttt.sst_scope": "turn"}, r"sst_scope must be one of \('example', 'message'\), got 'turn'"),
    ({"ttt.masked_closer_text_target": "maybe"}, "masked_closer_text_target must be"),
    ({"batch_size": True}, "--set batch_size must be an integer, got True"),
])
def test_wrong_override_types_are_one_line_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(CONFIG, {"data.train": "x.jsonl", **overrides})


@pytest.mark.parametrize("argv_tail, message", [
    (["--set", "max_steps=abc"], "--set max_steps must be an integer, got 'abc'"),
    (["--set", "optim.lr=[1,"], "not valid YAML"),
])
def test_train_cli_bad_overrides_are_one_line(tmp_path, capsys, argv_tail, message):
    rc = main(["train", "--config", str(CONFIG), "--out", str(tmp_path / "run"), *argv_tail])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_train_cli_garbage_yaml_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {train: [a, b\nmax_steps: : :\n")
    rc = main(["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and f"{bad}: not valid YAML" in err and len(err.strip().splitlines()) == 1


def test_numpy_numbers_are_numbers():
    import numpy as np

    cfg = GenerationConfig(steps=np.int64(3), stop_threshold=np.float32(0.5))
    assert cfg.steps == 3 and type(cfg.steps) is int and type(cfg.stop_threshold) is float
    with pytest.raises(ValueError, match="use_cache must be true/false, got 1"):
        GenerationConfig(use_cache=1)
