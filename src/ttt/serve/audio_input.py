"""Uploaded audio bytes -> a float32 mono wave, with one-line errors for what is not usable speech.

libsndfile (soundfile) reads WAV, FLAC and Ogg (Vorbis/Opus); a browser's MediaRecorder writes WebM/Opus,
which PyAV (the `av` wheel, bundling FFmpeg's decoders) reads when installed. The shipped page sends WAV it
encodes itself, so the server needs no decoder beyond soundfile for it."""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ttt.audio.io import check_wave


def decode_audio(data: bytes, name: str = "upload", max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(wave, sample rate) from an audio file's bytes; ValueError naming `name` when it is not audio, is
    silent or empty, or is longer than `max_seconds`."""
    if not data:
        raise ValueError(f"{name}: empty upload (0 bytes)")
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        wave, sr = _decode_with_av(data, name)
    wave = check_wave(wave, int(sr), name)
    if max_seconds is not None and len(wave) / sr > max_seconds:
        raise ValueError(f"{name}: audio is {len(wave) / sr:.1f} s long; the limit is {max_seconds:g} s")
    return wave, int(sr)


def _decode_with_av(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Containers libsndfile cannot open (WebM, MP4, ...), through PyAV when it is installed."""
    try:
        import av
    except ImportError:
        raise ValueError(f"{name}: not an audio file that soundfile can read (WebM and other containers need PyAV: "
                         "pip install 'text-to-talk[serve]')") from None
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise ValueError(f"{name}: not an audio file (FFmpeg finds no audio stream in it)")
            resampler = av.AudioResampler(format="flt", layout="mono")
            stream = container.streams.audio[0]
            parts, sr = [], None
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    sr = out.sample_rate
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError:
        raise ValueError(f"{name}: not an audio file that soundfile or FFmpeg can read") from None
    if not parts or sr is None:
        raise ValueError(f"{name}: audio is empty (0 samples)")
    return np.concatenate(parts), sr


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV, what every browser's decodeAudioData and every script can play."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
