"""The shipped training configs load, and those for data/tokens-c4 declare its 4-token text chunks."""
import pytest

from ttt.train_config import load_config

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
