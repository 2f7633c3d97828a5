"""Audio files in and out: float32 mono waves, resampling, and validation with errors that name the file.

Everything downstream (codec, scorer, corpus) works on `np.ndarray` float32 mono in [-1, 1] plus a sample
rate, so this module is the single place that turns files into that shape and refuses bad input early.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ttt.files import check_writable_folder

log = logging.getLogger(__name__)

# A wave whose peak stays below this (about -80 dBFS) carries no speech; encoding it would only produce noise codes.
SILENCE_PEAK = 1e-4
# Spectral flatness above which an input is reported as noise (white noise 0.56, speech below 0.2).
NOISE_FLATNESS = 0.45


def _supported_suffixes() -> set[str]:
    """File suffixes libsndfile can read; '.wav' etc. plus the common aliases of its format names."""
    suffixes = {"." + name.lower() for name in sf.available_formats()}
    return suffixes | {".aif", ".aiff", ".oga", ".opus", ".snd"}


def check_wave(wave: np.ndarray, sample_rate: int, name: str = "wave", allow_silent: bool = False) -> np.ndarray:
    """Validate a mono or multi-channel wave and return it as float32 mono; `name` appears in every error.

    Silence is an error for inputs (there is nothing to encode or transcribe) but allowed for outputs.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"{name}: sample rate must be a positive integer, got {sample_rate!r}")
    wave = np.asarray(wave)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)  # soundfile layout: (frames, channels)
    if wave.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D mono or 2-D (frames, channels) wave, got shape {wave.shape}")
    if wave.size == 0:
        raise ValueError(f"{name}: audio is empty (0 samples)")
    if not np.issubdtype(wave.dtype, np.number):
        raise ValueError(f"{name}: samples must be numeric, got dtype {wave.dtype}")
    wave = wave.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    if not allow_silent and float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise ValueError(f"{name}: audio is silent (peak below {SILENCE_PEAK:g})")
    return wave


def load_audio(path: str | os.PathLike, allow_silent: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as (float32 mono wave, sample rate); raises ValueError naming the file on bad input.

    `allow_silent` accepts an all-silent file (a model's output may be silence and must still be scored)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")
    if path.suffix.lower() not in _supported_suffixes():
        raise ValueError(f"{path}: unsupported audio format {path.suffix!r} (use WAV, FLAC or OGG)")
    try:
        wave, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise ValueError(f"{path}: unreadable or corrupt audio file ({err})") from err
    wave = check_wave(wave, sample_rate, name=str(path), allow_silent=allow_silent)
    missing = _missing_wav_bytes(path)
    if missing:
        present = len(wave) / sample_rate
        log.warning("%s: the file is truncated: its header promises %d more bytes of audio than it holds; "
                    "using the %.2f s that are there", path, missing, present)
    return wave, int(sample_rate)


def _missing_wav_bytes(path: Path) -> int:
    """How many bytes of sample data a RIFF/WAVE file's header declares beyond its end (0 if none, or
    if the file is no plain WAV). libsndfile reads a file cut mid-data without complaint."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return 0
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                if length in (0, 0xFFFFFFFF):  # streamed files leave the size open
                    return 0
                return max(0, length - (size - f.tell()))
            f.seek(length + (length & 1), 1)


def noise_warning(wave: np.ndarray, sample_rate: int, name: str = "wave") -> str | None:
    """A warning when `wave` sounds like noise rather than speech, or None.

    Spectral flatness (geometric over arithmetic mean of each frame's power spectrum; median over frames
    that carry sound) is about 0.56 for white noise and below 0.2 for speech, noisy speech included
    (measured: flite and the shipped question 0.0004-0.002, speech with noise 20 dB down 0.19)."""
    n, hop = 512, 256
    if len(wave) < n:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(wave, dtype=np.float64), n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    energy = power.mean(axis=1)
    loud = energy > energy.max() * 1e-3
    flatness = float(np.median(np.exp(np.log(power[loud]).mean(axis=1)) / energy[loud]))
    if flatness < NOISE_FLATNESS:
        return None
    return (f"{name}: sounds like noise, not speech (spectral flatness {flatness:.2f}; speech is below 0.2): "
            "the answer may be meaningless")


def resample(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited resampling with libsoxr (its "HQ" filter), clipped to [-1, 1] because the
    anti-aliasing filter can overshoot on transients. Output length is round(len · sr_to / sr_from)."""
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    wave = np.asarray(wave, dtype=np.float32)
    if sr_from == sr_to:
        return wave
    out = soxr.resample(wave, int(sr_from), int(sr_to), quality="HQ")
    return np.clip(out, -1.0, 1.0)


def check_output_path(path: str | os.PathLike, flag: str = "output") -> Path:
    """Refuse, before any work, an audio output `save_audio` could not write: a directory, a format it
    cannot write, or a folder that is a file or not writable. `flag` names the option in the message."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a directory; give a file name such as {path / 'out.wav'}")
    if path.suffix and path.suffix.lower() not in _supported_suffixes():
        raise ValueError(f"{flag} {path}: unsupported audio format {path.suffix!r} (use .wav, .flac or .ogg)")
    check_writable_folder(path, flag)  # save_audio creates missing folders: the nearest existing one must take them
    return path


def save_audio(path: str | os.PathLike, wave: np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit file atomically (temp file + rename) so that readers never see a half-written file."""
    path = Path(path)
    wave = np.clip(check_wave(wave, sample_rate, name=str(path), allow_silent=True), -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {"": "WAV", ".aif": "AIFF", ".oga": "OGG", ".opus": "OGG"}.get(path.suffix.lower(), path.suffix.lstrip(".").upper())
    subtype = "PCM_16" if fmt in {"WAV", "FLAC", "AIFF"} else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a written wav is meant to be shared like any file
    try:
        sf.write(tmp, wave, int(sample_rate), subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("wrote %s (%.2f s at %d Hz)", path, len(wave) / sample_rate, sample_rate)
    return path
