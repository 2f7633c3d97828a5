"""Each TTS engine speaks: non-silent audio at its native rate; bad input is refused."""
import numpy as np
import pytest

from ttt.corpus.voices import TARGET_VOICE, TEST_ONLY_VOICES, VOICES, get_voice, make_engine

TEXT = "what is seven plus four"


@pytest.mark.parametrize("name,rate", [(TARGET_VOICE, 22050), ("flite-slt", 16000),
                                       ("flite-kal16", 16000), ("espeak-en-us+f3-r160-p60", 22050)])
def test_engine_speaks(name, rate):
    wave, sr = get_voice(name).synthesize(TEXT)
    assert sr == rate
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.8 < len(wave) / sr < 4.0  # five words
    assert np.sqrt(np.mean(wave ** 2)) > 0.01
    assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) <= 1.0


def test_all_espeak_variants_exist():
    espeak = make_engine("espeak")
    for spec in VOICES.values():
        if spec.engine == "espeak":
            wave, _ = espeak.synthesize("hello", **spec.params)
            assert np.max(np.abs(wave)) > 0.05, spec.name


def test_piper_is_reproducible_with_a_fresh_seeded_engine():
    first = make_engine("piper", seed=3).synthesize(TEXT)[0]
    second = make_engine("piper", seed=3).synthesize(TEXT)[0]
    assert np.array_equal(first, second)


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        get_voice("flite-slt").synthesize("  ")
    with pytest.raises(ValueError, match="unknown voice"):
        get_voice("nobody")
    with pytest.raises(ValueError, match="unknown espeak-ng voice"):
        make_engine("espeak").synthesize("hi", voice="xx-nonexistent")
    assert set(TEST_ONLY_VOICES) <= set(VOICES) and TARGET_VOICE not in TEST_ONLY_VOICES
