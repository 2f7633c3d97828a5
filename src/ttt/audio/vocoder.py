"""Log-mel analysis and Griffin-Lim synthesis with plain `torch.stft`/`istft`.

No neural vocoder ships weights offline, so the codec's decoder predicts a log-mel spectrogram and this
module turns it back into a wave: mel -> linear magnitude by least squares, then Griffin-Lim phase
recovery with momentum ("fast Griffin-Lim"), which needs about a third of the iterations of the plain one.
librosa is used only for the mel filterbank matrix.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import torch

LOG_FLOOR = 1e-5  # natural-log floor: -11.5, well under the quietest speech bins


@dataclass(frozen=True)
class MelConfig:
    """Analysis settings; 16 kHz with a 10 ms hop gives 100 mel frames per second, a multiple of 12.5/25 Hz."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


class MelSpectrogram:
    """Wave <-> log-mel for one `MelConfig`; stateless apart from the cached filterbank and window."""

    def __init__(self, config: MelConfig = MelConfig(), filterbank: torch.Tensor | None = None):
        self.config = config
        if filterbank is not None:  # a saved codec carries its own: no librosa import (~1 s) at decode time
            self.filterbank = filterbank.float()

    @cached_property
    def filterbank(self) -> torch.Tensor:
        import librosa

        c = self.config
        fb = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max)
        return torch.from_numpy(fb).float()  # (n_mels, n_fft // 2 + 1)

    @cached_property
    def inverse_filterbank(self) -> torch.Tensor:
        return torch.linalg.pinv(self.filterbank)  # (n_freq, n_mels)

    @cached_property
    def window(self) -> torch.Tensor:
        return torch.hann_window(self.config.win_length)

    def _stft(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.stft(wave, c.n_fft, c.hop_length, c.win_length, self.window, center=True, return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int | None) -> torch.Tensor:
        c = self.config
        return torch.istft(spec, c.n_fft, c.hop_length, c.win_length, self.window, center=True, length=length)

    def __call__(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Log-mel of a mono wave at `config.sample_rate`: (frames, n_mels), frames = len // hop + 1."""
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        magnitude = self._stft(wave).abs()
        return torch.log(torch.clamp(self.filterbank @ magnitude, min=LOG_FLOOR)).T

    @torch.no_grad()
    def invert(self, log_mel: torch.Tensor, n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> np.ndarray:
        """Log-mel (frames, n_mels) -> wave; deterministic for a given seed (random initial phase).

        Inputs shorter than one FFT window (a single streamed code is 4 frames) are padded with silent
        frames for the phase search and cut back afterwards: the STFT's reflection padding needs a wave
        longer than half a window."""
        mel = torch.exp(torch.as_tensor(log_mel, dtype=torch.float32)).T
        magnitude = torch.clamp(self.inverse_filterbank @ mel, min=0.0)
        keep = (magnitude.shape[1] - 1) * self.config.hop_length
        short = self.config.n_fft // self.config.hop_length + 1 - magnitude.shape[1]
        if short > 0:
            magnitude = torch.nn.functional.pad(magnitude, (0, short))
        length = (magnitude.shape[1] - 1) * self.config.hop_length
        generator = torch.Generator().manual_seed(seed)
        phase = torch.rand(magnitude.shape, generator=generator) * 2 * torch.pi
        spec = magnitude * torch.exp(1j * phase)
        previous = torch.zeros_like(spec)
        for _ in range(n_iter):
            rebuilt = self._stft(self._istft(spec, length))
            accelerated = rebuilt + momentum * (rebuilt - previous)
            previous = rebuilt
            spec = magnitude * torch.exp(1j * torch.angle(accelerated))
        wave = self._istft(spec, length)[:keep]
        peak = float(wave.abs().max())
        if peak > 0.95:  # GL can overshoot; keep the wave in range without touching quiet output
            wave = wave * (0.95 / peak)
        return wave.numpy().astype(np.float32)
