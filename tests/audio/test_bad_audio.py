"""Audio a user may hand in by mistake: too short, a directory, a truncated file, noise. Each is a one-line
error or a warning that says what is wrong, never a traceback or a silent answer."""
import logging

import numpy as np
import pytest
import soundfile as sf

from ttt.audio.io import load_audio
from ttt.cli import main


def _speechlike(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_audio_shorter_than_one_code_is_a_one_line_error(tmp_path, tiny_model_dir, capsys):
    from ttt.audio.codec import load_default_codec

    with pytest.raises(ValueError, match="audio of 20 ms is too short: the codec needs at least 30 ms"):
        load_default_codec().encode(_speechlike(0.02), 16000)
    assert len(load_default_codec().encode(_speechlike(0.03), 16000)) == 1
    short = tmp_path / "short.wav"
    sf.write(short, _speechlike(0.02, 44100), 44100)
    rc = main(["asr", str(short), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [f"ttt asr: error: {err.split('error: ')[1].strip()}"]
    assert "too short" in err


def test_a_directory_given_as_audio_says_so(tmp_path, capsys):
    with pytest.raises(ValueError, match="is a directory, not an audio file"):
        load_audio(tmp_path)
    rc = main(["asr", str(tmp_path), "--model", str(tmp_path / "none")])
    assert rc == 1 and "is a directory, not an audio file" in capsys.readouterr().err


def test_a_wav_truncated_mid_data_is_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "cut.wav"
    sf.write(path, _speechlike(1.0), 16000, subtype="PCM_16")
    whole = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        load_audio(path)
    assert "truncated" not in caplog.text, "a whole file reads silently"
    path.write_bytes(whole[: len(whole) - 16000])  # the last 0.5 s of 16-bit samples are gone
    with caplog.at_level(logging.WARNING):
        wave, sr = load_audio(path)
    assert f"{path}: the file is truncated" in caplog.text and "16000 more bytes" in caplog.text
    assert len(wave) == 8000 and sr == 16000


def test_white_noise_is_answered_with_a_warning(tiny_model_dir, caplog):
    from ttt.audio.io import noise_warning
    from ttt.speech import SpeechLM

    noise = (np.random.default_rng(0).standard_normal(48000) * 0.3).astype(np.float32)
    assert noise_warning(_speechlike(3.0), 16000) is None
    lm = SpeechLM.from_dir(tiny_model_dir, max_new_tokens=4)
    with caplog.at_level(logging.WARNING):
        lm.transcribe(noise, 16000)
    assert "input audio: sounds like noise, not speech" in caplog.text


def test_the_shipped_question_is_not_called_noise():
    from importlib import resources

    from ttt.audio.io import noise_warning

    wave, sr = load_audio(resources.files("ttt") / "assets" / "demo" / "question.wav")
    assert noise_warning(wave, sr) is None
