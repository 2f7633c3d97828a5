"""Shared fixtures: a tiny tokenizer and TtT model built locally (no downloads)."""
from __future__ import annotations

import copy
import json

import pytest

from ttt.backbones import tiny_backbone, train_bpe_tokenizer
from ttt.model import TtTModel

from helpers import CODEBOOK, SHARED, WORDS

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


@pytest.fixture
def official_samples():
    path = SHARED / "reference" / "official_ttt_asr_samples.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text())
