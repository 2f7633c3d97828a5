"""Each TTS engine speaks: non-silent audio at its native rate; bad input is refused."""
import numpy as np
import pytest

from helpers import needs_flite
from ttt.corpus.voices import (ALL_VOICES, EXTRA_TRAIN_VOICES, TARGET_VOICE, TEST_ONLY_VOICES, UNSEEN_VOICES,
                               VOICES, get_voice, make_engine)

TEXT = "what is seven plus four"


@pytest.mark.parametrize("name,rate", [(TARGET_VOICE, 22050), pytest.param("flite-slt", 16000, marks=needs_flite),
                                       pytest.param("flite-kal16", 16000, marks=needs_flite),
                                       ("espeak-en-us+f3-r160-p60", 22050)])
def test_engine_speaks(name, rate):
    wave, sr = get_voice(name).synthesize(TEXT)
    assert sr == rate
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.8 < len(wave) / sr < 4.0  # five words
    assert np.sqrt(np.mean(wave ** 2)) > 0.01
    assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) <= 1.0


def test_all_espeak_variants_exist():
    espeak = make_engine("espeak")
    for spec in ALL_VOICES.values():
        if spec.engine == "espeak":
            wave, _ = espeak.synthesize("hello", **spec.params)
            assert np.max(np.abs(wave)) > 0.05, spec.name


def test_piper_is_reproducible_with_a_fresh_seeded_engine():
    first = make_engine("piper", seed=3).synthesize(TEXT)[0]
    second = make_engine("piper", seed=3).synthesize(TEXT)[0]
    assert np.array_equal(first, second)


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        get_voice("espeak-en-us+f3-r160-p60").synthesize("  ")
    with pytest.raises(ValueError, match="unknown voice"):
        get_voice("nobody")
    with pytest.raises(ValueError, match="unknown espeak-ng voice"):
        make_engine("espeak").synthesize("hi", voice="xx-nonexistent")
    assert set(TEST_ONLY_VOICES) <= set(VOICES) and TARGET_VOICE not in TEST_ONLY_VOICES


def test_extra_and_unseen_speakers_share_no_variant_with_the_standard_voices():
    """A train-only or unseen speaker must not be a standard (let alone test-only) speaker at another
    rate or pitch, so variants (the part after "+") and accents are compared, not whole names."""
    def variants(voices):
        return {spec.params["voice"] for spec in voices.values() if spec.engine == "espeak"}

    standard, extra, unseen = variants(VOICES), variants(EXTRA_TRAIN_VOICES), variants(UNSEEN_VOICES)
    assert len(extra) == len(EXTRA_TRAIN_VOICES) == 24 and len(unseen) == len(UNSEEN_VOICES)
    assert not (standard & extra) and not (standard & unseen) and not (extra & unseen)
    suffix = lambda names: {n.split("+")[1] for n in names if "+" in n}
    assert not suffix(extra | unseen) & suffix(standard)
    assert get_voice(next(iter(UNSEEN_VOICES))).synthesize(TEXT)[1] == 22050


@needs_flite
def test_flite_refuses_blank_text():
    with pytest.raises(ValueError, match="non-empty"):
        get_voice("flite-slt").synthesize("  ")


def test_missing_flite_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="system package flite"):
        get_voice("flite-slt")
