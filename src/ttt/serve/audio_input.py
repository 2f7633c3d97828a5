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
    silent or empty, or is longer than `max_seconds`.

    The length is checked before the samples are decoded (from the header, or while FFmpeg decodes), so a
    small compressed upload cannot unpack into hours of audio in memory."""
    if not data:
        raise ValueError(f"{name}: empty upload (0 bytes)")
    limit = max_seconds if max_seconds is not None else float("inf")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            _check_length(f.frames / f.samplerate, limit, name)
            wave, sr = f.read(dtype="float32", always_2d=False), f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        wave, sr = _decode_with_av(data, name, limit)
    wave = check_wave(wave, int(sr), name)
    _check_length(len(wave) / sr, limit, name)
    return wave, int(sr)


def _check_length(seconds: float, limit: float, name: str) -> None:
    if seconds > limit:
        raise ValueError(f"{name}: audio is {seconds:.1f} s long; the limit is {limit:g} s")


def _decode_with_av(data: bytes, name: str, limit: float) -> tuple[np.ndarray, int]:
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
            parts, sr, samples = [], None, 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    sr, samples = out.sample_rate, samples + out.samples
                if sr:
                    _check_length(samples / sr, limit, name)
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
