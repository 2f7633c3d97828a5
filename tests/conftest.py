"""Shared fixtures: a tiny tokenizer and TtT models built locally, piper waves (no downloads)."""
from __future__ import annotations

import copy
import json

import pytest
import soundfile as sf

from ttt.training.backbones import tiny_backbone

from ttt.vocab import train_bpe_tokenizer
from ttt.model import TtTModel

from helpers import ANSWER, CODEBOOK, QUESTION, SHARED, WORDS

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


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory):
    """`wavs/q.wav` (the question) and `wavs/a.wav` (the answer), spoken by the piper voice (pip-installed)."""
    from ttt.corpus.voices import TARGET_VOICE, get_voice

    root = tmp_path_factory.mktemp("evaldata")
    (root / "wavs").mkdir()
    voice = get_voice(TARGET_VOICE)
    for name, text in [("q", QUESTION), ("a", ANSWER)]:
        wave, sr = voice.synthesize(text)
        sf.write(root / "wavs" / f"{name}.wav", wave, sr)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised TtT model with the shipped codec's codebook, saved like a trained one."""
    from ttt.audio.codec import load_default_codec
    from ttt.training.backbones import tiny_backbone
    from ttt.vocab import train_bpe_tokenizer
    from ttt.format import SYSTEM
    from ttt.model import TtTModel

    codebook = load_default_codec().codebook_size
    tok = train_bpe_tokenizer([QUESTION, ANSWER, *SYSTEM.values()] * 3, vocab_size=300)
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + codebook + 16, hidden_size=32), tok,
                                   audio_codebook_size=codebook)
    path = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(path)
    return path
