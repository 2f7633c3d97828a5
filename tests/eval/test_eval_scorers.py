"""The independent scorers on real synthesized speech: Whisper, PocketSphinx, DNSMOS."""
import numpy as np
import pytest

from ttt.corpus.voices import get_voice
from ttt.corpus.world import build_world, chat_lines
from ttt.eval.metrics import wer
from ttt.eval.quality import dnsmos
from ttt.eval.scorer import SphinxScorer, WhisperScorer

SENTENCES = ["the capital of france is paris", "seven plus four is eleven",
             "what day comes after monday"]


@pytest.fixture(scope="module")
def piper_speech():
    voice = get_voice("piper-joe")
    return [voice.synthesize(s) for s in SENTENCES]


def test_whisper_transcribes_piper(piper_speech):
    scorer = WhisperScorer()
    hyps = scorer.transcribe_many(piper_speech)
    assert wer(SENTENCES, hyps) <= 0.2, hyps


def test_sphinx_with_domain_lm(piper_speech):
    items = build_world()
    scorer = SphinxScorer(chat_lines(items) + [q for it in items for q in it.questions])
    hyps = scorer.transcribe_many(piper_speech)
    assert wer(SENTENCES, hyps) <= 0.3, hyps


def test_scorer_rejects_bad_audio():
    scorer = WhisperScorer()
    with pytest.raises(ValueError, match="empty"):
        scorer.transcribe(np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        scorer.transcribe(np.array([0.1, np.nan], np.float32), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        scorer.transcribe(np.ones(100, np.float32), 0)


def test_dnsmos_prefers_speech_to_noise(piper_speech):
    wave, rate = piper_speech[0]
    speech = dnsmos(wave, rate)
    noise = dnsmos(np.random.default_rng(0).uniform(-0.5, 0.5, 2 * 16000).astype(np.float32), 16000)
    assert set(speech) == {"ovrl", "sig", "bak", "p808"}
    assert speech["ovrl"] > noise["ovrl"] + 1.0 and speech["p808"] > noise["p808"]
    with pytest.raises(ValueError, match="empty"):
        dnsmos(np.zeros(0, np.float32), 16000)


def test_side_models_keep_to_torchs_thread_budget(monkeypatch):
    """`--threads 1` bounds the CTranslate2 / ONNX models too (the Whisper encoder and scorer, DNSMOS), so
    jobs run side by side on a small machine do not oversubscribe its cores; more than 2 is not used."""
    import torch

    import ttt.eval.quality as quality
    from ttt.audio.features import WhisperEncoder, side_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert side_threads() == 1
        monkeypatch.setattr(quality, "_DNSMOS", None)
        assert quality._model().onnx_sess.get_session_options().intra_op_num_threads == 1
        torch.set_num_threads(4)
        assert side_threads() == 2
        assert WhisperEncoder(cpu_threads=3).cpu_threads == 3, "an explicit count is kept"
    finally:
        torch.set_num_threads(before)
