"""`attn_implementation: auto` picks the rendering of the TtT mask that measured faster for the row length."""
from ttt.training.loop import FLEX_FROM_TOKENS, _attn, choose_attention
from ttt.training.config import load_config


def test_flex_only_on_a_gpu_and_only_for_long_rows():
    assert choose_attention(True, FLEX_FROM_TOKENS) == "flex_attention"
    assert choose_attention(True, 2 * FLEX_FROM_TOKENS) == "flex_attention"
    assert choose_attention(True, 4096) == "sdpa"  # dense measured faster at 1,024-4,096 tokens on an H200
    assert choose_attention(True, FLEX_FROM_TOKENS - 1) == "sdpa"
    assert choose_attention(True, 1024) == "sdpa"
    assert choose_attention(True, None) == "sdpa"  # uncapped rows are single examples
    assert choose_attention(False, 2 * FLEX_FROM_TOKENS) == "sdpa"


def test_auto_reads_the_runs_row_length_and_explicit_choices_stand(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    def config(**overrides):
        return load_config(overrides={"data.train": "train.jsonl", **overrides})

    assert _attn(config(**{"ttt.max_length": FLEX_FROM_TOKENS})) == "flex_attention"
    assert _attn(config(**{"ttt.max_length": 4096})) == "sdpa"
    assert _attn(config(**{"ttt.max_length": 1024})) == "sdpa"
    assert _attn(config()) == "sdpa"
    assert _attn(config(**{"ttt.max_length": 1024, "backbone.attn_implementation": "flex_attention"})) == "flex_attention"
