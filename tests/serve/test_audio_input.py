"""Upload decoding: what browsers and scripts send (WAV, FLAC, Ogg, WebM/Opus), and what is refused."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf

from ttt.serve.audio_input import decode_audio, wav_bytes


@pytest.fixture(scope="module")
def question(question_wav):
    return sf.read(question_wav, dtype="float32")


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_soundfile_formats(question, fmt, subtype):
    wave, sr = question
    buffer = io.BytesIO()
    sf.write(buffer, wave, sr, format=fmt, subtype=subtype)
    decoded, rate = decode_audio(buffer.getvalue())
    assert rate == sr and abs(len(decoded) - len(wave)) < sr // 50
    if fmt != "OGG":  # lossless
        assert np.abs(decoded - wave).max() < 1e-3


def test_webm_opus_from_a_browser_is_read_with_pyav(question):
    av = pytest.importorskip("av", reason="PyAV is not installed (the serve extra brings it)")
    wave, sr = question
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:  # what Chrome's MediaRecorder writes
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = sr
        for f in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    decoded, rate = decode_audio(buffer.getvalue(), "clip.webm")
    assert rate == 48000 and abs(len(decoded) / rate - len(wave) / sr) < 0.1
    assert np.abs(decoded).max() > 0.05
    with pytest.raises(ValueError, match=r"clip.webm: audio is 1.\d s long; the limit is 1 s"):
        decode_audio(buffer.getvalue(), "clip.webm", max_seconds=1.0)  # stopped while decoding


def test_bad_uploads_are_named_errors(question, monkeypatch):
    wave, sr = question
    with pytest.raises(ValueError, match="clip: empty upload"):
        decode_audio(b"", "clip")
    with pytest.raises(ValueError, match="clip: not an audio file"):
        decode_audio(b"%PDF-1.4 not audio at all", "clip")
    with pytest.raises(ValueError, match="clip: audio is silent"):
        decode_audio(wav_bytes(np.zeros(sr, np.float32), sr), "clip")
    with pytest.raises(ValueError, match=r"clip: audio is 2.0 s long; the limit is 1.5 s"):
        decode_audio(wav_bytes(wave, sr), "clip", max_seconds=1.5)
    bomb = io.BytesIO()  # an hour of silence is a small FLAC: refused from its header, before decoding
    sf.write(bomb, np.zeros(3600 * 8000, np.int16), 8000, format="FLAC")
    assert len(bomb.getvalue()) < 2_000_000
    with pytest.raises(ValueError, match=r"clip: audio is 3600.0 s long; the limit is 20 s"):
        decode_audio(bomb.getvalue(), "clip", max_seconds=20)
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV absent: the error says how to get it
    with pytest.raises(ValueError, match=r"clip: not an audio file .*pip install 'text-to-talk\[serve\]'"):
        decode_audio(b"\x1aE\xdf\xa3 webm without pyav", "clip")
