"""Batched text decoding (`generate_batch`): every row's result equals decoding it alone."""
import copy

import pytest
import importlib

engine = importlib.import_module("ttt.generate")  # the module (the package attribute `ttt.generate` is the function)
from ttt.training.backbones import tiny_backbone
from ttt.format import input_audio
from ttt.generate import generate, generate_batch
from ttt.model import TtTModel

from helpers import LONG, SHORT


@pytest.fixture(scope="module")
def random_model(base_tokenizer):
    """Random weights: arbitrary text, so rows stop at different steps (and some open audio spans)."""
    tok = copy.deepcopy(base_tokenizer)
    return TtTModel.from_backbone(tiny_backbone(len(tok) + 80, seed=3), tok, audio_codebook_size=64).eval()


def conversations():
    return [
        LONG["messages"][:-1],
        [{"role": "user", "content": "what is two plus two"}],
        SHORT["messages"][:-1],
        [{"role": "system", "content": "transcribe"}, {"role": "user", "content": input_audio([3, 1, 4, 1, 5, 9, 2, 6])}],
        [{"role": "user", "content": "hi"}],
    ]


def check(model, **kwargs):
    batch = generate_batch(model, conversations(), **kwargs)
    alone = [generate(model, c, **kwargs) for c in conversations()]
    for b, a in zip(batch, alone):
        assert b.token_ids == a.token_ids and b.text == a.text and b.audio_spans == a.audio_spans
        assert [e.text for e in b.events if hasattr(e, "text")] == [e.text for e in a.events if hasattr(e, "text")]
    return batch, alone


@pytest.mark.parametrize("kwargs", [{"max_new_tokens": 12}, {"max_new_tokens": 3},
                                    {"max_new_tokens": 10, "temperature": 1.2, "top_k": 30, "seed": 5}])
def test_batch_equals_batch_one_on_random_text(random_model, monkeypatch, kwargs):
    alone_calls = []
    real = engine.generate
    monkeypatch.setattr(engine, "generate", lambda *a, **k: alone_calls.append(1) or real(*a, **k))
    check(random_model, **kwargs)
    assert len(alone_calls) < len(conversations()), "some rows must have been decoded in the batch"


def test_batch_equals_batch_one_when_rows_open_audio(trained):
    """The overfit model answers with audio: those rows leave the batch and are decoded alone."""
    batch, _ = check(trained, max_new_tokens=80)
    assert batch[0].audio_spans and batch[2].audio_spans  # LONG and SHORT answers with speech


def test_batch_in_ar_mode_and_settings_that_need_the_full_loop(trained):
    trained.config.mode = "ar"
    try:
        check(trained, max_new_tokens=8)
    finally:
        trained.config.mode = "ttt"
    check(trained, max_new_tokens=8, cfg_scale=1.0)
    assert generate_batch(trained, []) == []


def test_batch_rejects_a_prompt_longer_than_the_context(base_tokenizer):
    tok = copy.deepcopy(base_tokenizer)
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + 80, max_positions=32), tok, audio_codebook_size=64).eval()
    with pytest.raises(ValueError, match="prompt has .* tokens but the model's context is 32"):
        generate_batch(model, [LONG["messages"][:-1], [{"role": "user", "content": "hi"}]])
