"""Shared fixtures: a tiny tokenizer and TtT model built locally (no downloads)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ttt.backbones import tiny_backbone, train_bpe_tokenizer
from ttt.model import TtTModel

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CODEBOOK = 64
WORDS = [
    "what is seven plus four", "seven plus four is eleven", "the capital of france is paris",
    "hello world, how are you today?", "Every evening, the dogs in our neighbourhood are howling.",
    "of the existence of which lavoisier was unaware in the fermented liquid",
]


@pytest.fixture(scope="session")
def base_tokenizer():
    return train_bpe_tokenizer(WORDS * 5, vocab_size=400)


@pytest.fixture
def make_model(base_tokenizer):
    """Factory: a fresh tiny TtT model (its own tokenizer copy) for a family/config."""

    def make(family: str = "qwen2", codebook: int = CODEBOOK, attn: str = "sdpa", **config) -> TtTModel:
        tok = copy.deepcopy(base_tokenizer)
        backbone = tiny_backbone(len(tok) + codebook + 16, family=family, attn_implementation=attn)
        return TtTModel.from_backbone(backbone, tok, audio_codebook_size=codebook, **config).eval()

    return make


def audio(codes) -> str:
    return "".join(f"<|audio_{c}|>" for c in codes)


def chat_example(n_spans: int = 2, last: int = 9, user_codes: int = 7) -> dict:
    """User speech -> assistant text with `n_spans` fixed 26-code spans and a final span of `last` codes."""
    spans = "".join(f" chunk {i}<|begin_of_audio|>{audio(range(i, i + 26))}<|end_of_audio_new|>" for i in range(n_spans))
    return {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": f"<|begin_of_audio|>{audio(range(user_codes))}<|end_of_audio|>"},
            {"role": "assistant", "content": f"{spans} the end<|begin_of_quad|>{audio(range(last))}<|end_of_audio_span_last|>"},
        ]
    }


@pytest.fixture
def official_samples():
    path = SHARED / "reference" / "official_ttt_asr_samples.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text())
