"""Audio I/O: mono downmix, resampling keeps frequencies, and every bad input fails with the file's name."""
import numpy as np
import pytest
import soundfile as sf

from ttt.audio.io import check_wave, load_audio, resample, save_audio


def sine(freq: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sample_rate / len(wave))


def test_resample_keeps_frequency_and_length():
    wave = sine(1000, 44100)
    out = resample(wave, 44100, 16000)
    assert out.dtype == np.float32 and len(out) == 16000
    assert abs(peak_frequency(out, 16000) - 1000) < 2
    assert np.max(np.abs(out)) <= 1.0


def test_resample_keeps_the_band_below_nyquist():
    """A 440 Hz + 3 kHz mixture survives 22.05 -> 16 kHz (piper's rate to the corpus's) within 1%, and a
    9 kHz tone above the new Nyquist frequency is filtered out rather than aliased."""
    t = np.arange(22050) / 22050
    low = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    out = resample(low, 22050, 16000)
    t16 = np.arange(16000) / 16000
    expected = 0.3 * np.sin(2 * np.pi * 440 * t16) + 0.2 * np.sin(2 * np.pi * 3000 * t16)
    body = slice(200, -200)  # the filter's edges
    assert np.max(np.abs(out[body] - expected[body])) < 0.005
    high = (0.5 * np.sin(2 * np.pi * 9000 * t)).astype(np.float32)
    assert np.max(np.abs(resample(high, 22050, 16000)[body])) < 0.005


def test_resample_clips_overshoot():
    square = np.sign(sine(200, 48000, amplitude=1.0)).astype(np.float32)
    assert np.max(np.abs(resample(square, 48000, 16000))) <= 1.0


def test_save_load_roundtrip_and_stereo_downmix(tmp_path):
    wave = sine(440, 22050)
    path = save_audio(tmp_path / "a.wav", wave, 22050)
    loaded, sr = load_audio(path)
    assert sr == 22050 and np.allclose(loaded, wave, atol=1e-4)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file behind
    stereo = np.stack([wave, 0.5 * wave], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 22050)
    mono, _ = load_audio(tmp_path / "s.flac")
    assert mono.ndim == 1 and np.allclose(mono, wave * 0.75, atol=1e-3)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.wav.*empty"):
        load_audio(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x01garbage" * 20)
    with pytest.raises(ValueError, match="corrupt.wav.*(unreadable|corrupt)"):
        load_audio(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="clip.m4a.*unsupported"):
        load_audio(path)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="zero.wav.*empty"):
        load_audio(path)


def test_silent_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="silent.wav.*silent"):
        load_audio(path)


def test_nan_file(tmp_path):
    path = tmp_path / "nan.wav"
    wave = sine(440, 16000)
    wave[100] = np.nan
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="nan.wav.*NaN"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("rate", [0, -16000, 16000.5])
def test_bad_sample_rate(rate):
    with pytest.raises(ValueError, match="sample rate"):
        check_wave(sine(440, 16000), rate)


def test_check_wave_rejects_inf_and_silence():
    wave = sine(440, 16000)
    wave[5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_wave(wave, 16000, name="x")
    with pytest.raises(ValueError, match="silent"):
        check_wave(np.zeros(100), 16000)
    assert check_wave(np.zeros(100), 16000, allow_silent=True).dtype == np.float32
