"""The shipped training configs load, and those for data/tokens-c4 declare its 4-token text chunks."""
import pytest

from ttt.training.config import load_config

from train_toy import CONFIG


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.parent.glob("*.yaml")))
def test_every_config_loads_and_builds_a_ttt_config(name):
    cfg = load_config(CONFIG.parent / name)
    assert cfg.ttt_config().audio_chunk == 26


@pytest.mark.parametrize("name", ["default.yaml", "repro.yaml"])
def test_configs_on_four_token_chunks_say_so(name):
    cfg = load_config(CONFIG.parent / name)
    assert "tokens-c4" in cfg.data.train and cfg.ttt_config().text_chunk == 4
    assert cfg.backbone.tokenizer == "data/tokens-c4/tokenizer"


def test_float_fields_take_exponents_without_a_dot():
    """PyYAML reads `1e-3` as a string; `--set optim.lr=1e-3` and `lr: 1e-3` must still mean 0.001."""
    from ttt.training.config import load_config, parse_override

    cfg = load_config(None, dict([parse_override("data.train=x.jsonl"), parse_override("optim.lr=1e-3"),
                                  parse_override("max_minutes=5e1")]))
    assert cfg.optim.lr == 0.001 and cfg.max_minutes == 50.0
    with pytest.raises(ValueError, match="optim.lr must be a number, got 'fast'"):
        load_config(None, {"data.train": "x.jsonl", "optim.lr": "fast"})
