"""Eval fixtures: a few flite waves, an eval JSONL over them, and a tiny random TtT model on disk."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from evaluate_helpers import ANSWER, QUESTION


@pytest.fixture
def write_jsonl():
    """Writer for eval files: dict rows as JSON, str rows verbatim (to plant malformed lines)."""

    def write(path, rows):
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        return path

    return write


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory):
    """`wavs/q.wav` (the question) and `wavs/a.wav` (the answer), spoken by flite."""
    from ttt.corpus.voices import get_voice

    root = tmp_path_factory.mktemp("evaldata")
    (root / "wavs").mkdir()
    voice = get_voice("flite-slt")
    for name, text in [("q", QUESTION), ("a", ANSWER)]:
        wave, sr = voice.synthesize(text)
        sf.write(root / "wavs" / f"{name}.wav", wave, sr)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised TtT model with the shipped codec's codebook, saved like a trained one."""
    from ttt.audio.codec import load_default_codec
    from ttt.backbones import tiny_backbone, train_bpe_tokenizer
    from ttt.build_data import SYSTEM
    from ttt.model import TtTModel

    codebook = load_default_codec().codebook_size
    tok = train_bpe_tokenizer([QUESTION, ANSWER, *SYSTEM.values()] * 3, vocab_size=300)
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + codebook + 16, hidden_size=32), tok,
                                   audio_codebook_size=codebook)
    path = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(path)
    return path
