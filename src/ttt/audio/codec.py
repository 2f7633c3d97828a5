"""The `AudioCodec` interface and the built-in codec: quantised Whisper features -> learned log-mel -> Griffin-Lim.

The language model only ever sees `list[int]` codes at a fixed `frame_rate` from a vocabulary of
`codebook_size`; anything that maps waves to such codes and back can stand in, e.g. an adapter around
GLM-4-Voice's tokenizer and CosyVoice's decoder when a user has those weights. Saved codecs are a folder
with `config.json` (whose "type" picks the class in `CODEC_TYPES`) and `model.safetensors`; no pickle.
"""
from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from ttt.audio.io import check_wave, load_audio, resample

log = logging.getLogger(__name__)

CODEC_TYPES: dict[str, type["AudioCodec"]] = {}
# Adapters around released weights; imported (cheaply: heavy imports stay inside their methods) before a lookup.
ADAPTER_MODULES = ("ttt.audio.glm4voice", "ttt.audio.mimi")


def _register_adapters() -> None:
    import importlib

    for name in ADAPTER_MODULES:
        importlib.import_module(name)


def register_codec(name: str):
    """Class decorator: make `load_codec` able to rebuild this codec type from its `config.json`."""

    def wrap(cls):
        cls.codec_type = name
        CODEC_TYPES[name] = cls
        return cls

    return wrap


class AudioCodec(ABC):
    """Waves <-> discrete codes. `encode` accepts any sample rate and channel layout."""

    codec_type: str = ""

    @property
    @abstractmethod
    def frame_rate(self) -> float:
        """Codes per second of audio."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Codes are integers in [0, codebook_size)."""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate of the waves `decode` returns."""

    @abstractmethod
    def encode(self, wave: np.ndarray, sample_rate: int) -> list[int]:
        """Mono or (frames, channels) wave at any rate -> codes."""

    @abstractmethod
    def decode(self, codes: list[int]) -> tuple[np.ndarray, int]:
        """Codes -> (float32 mono wave, sample rate)."""

    @abstractmethod
    def save(self, directory: str | os.PathLike) -> Path:
        """Write `config.json` (with "type") and weights as safetensors into `directory`."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | os.PathLike) -> "AudioCodec":
        """Rebuild a codec written by `save`."""

    @classmethod
    def from_source(cls, source: str) -> "AudioCodec":
        """Build from a local folder or hub id (adapters around others' weights); saved codecs use `load`."""
        return cls.load(source)

    def encode_file(self, path: str | os.PathLike) -> list[int]:
        return self.encode(*load_audio(path))

    def roundtrip(self, wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        return self.decode(self.encode(wave, sample_rate))

    def _check_codes(self, codes) -> np.ndarray:
        codes = np.asarray(list(codes), dtype=np.int64)
        if codes.ndim != 1 or codes.size == 0:
            raise ValueError("decode needs a non-empty 1-D sequence of codes")
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{codes.min()}, {codes.max()}]")
        return codes


def load_codec(directory: str | os.PathLike | None = None) -> AudioCodec:
    """Load any registered codec type from a folder written by its `save`; None (no codec asked for)
    loads the codec shipped in the package."""
    _register_adapters()
    directory = default_codec_dir() if directory is None else Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a saved codec)")
    kind = json.loads(config_path.read_text()).get("type")
    if kind not in CODEC_TYPES:
        raise ValueError(f"{config_path}: unknown codec type {kind!r}; known: {sorted(CODEC_TYPES)}")
    return CODEC_TYPES[kind].load(directory)


def open_codec(spec: str | os.PathLike | None) -> AudioCodec:
    """The codec a command's `--codec` names: None -> the shipped codec; a folder -> `load_codec`;
    `TYPE:SOURCE` -> that registered type's `from_source(SOURCE)` (a local folder or a hub id), e.g.
    `glm4voice:THUDM/glm-4-voice-tokenizer` or `mimi:kyutai/mimi`."""
    if spec is None:
        return load_default_codec()
    _register_adapters()
    text = str(spec)
    kind, sep, source = text.partition(":")
    if sep and not Path(text).exists() and kind in CODEC_TYPES:
        return CODEC_TYPES[kind].from_source(source)
    if sep and not Path(text).exists():
        raise ValueError(f"--codec {text}: unknown codec type {kind!r}; known: {sorted(CODEC_TYPES)}")
    return load_codec(text)


def default_codec_dir() -> Path:
    return Path(str(resources.files("ttt") / "assets" / "codec"))


def load_default_codec() -> AudioCodec:
    """The codec shipped in the package (trained by `ttt codec train`); the Whisper encoder loads lazily."""
    return load_codec(None)


@dataclass
class VQCodecConfig:
    """Everything needed to rebuild a `VQMelCodec` besides its tensors."""

    features: str = "whisper"  # "whisper" (tiny.en encoder, 50 Hz) or "logmel" (speaker-dependent baseline)
    pool: int = 4  # 50 Hz feature frames per code: 4 -> 12.5 Hz, 2 -> 25 Hz
    codebook_size: int = 1024
    mel: dict = field(default_factory=dict)  # MelConfig fields of the decoder's output
    decoder: dict = field(default_factory=dict)  # DecoderConfig fields
    griffin_lim_iters: int = 32
    trained_on: dict = field(default_factory=dict)  # provenance: data, steps, losses


@register_codec("ttt-vq-mel")
class VQMelCodec(AudioCodec):
    """Encoder: features -> mean-pool -> standardise -> nearest k-means centroid.
    Decoder: code embeddings -> `MelDecoder` -> Griffin-Lim. Only the decoder needs torch weights; the
    encoder's tensors are the centroids and the feature statistics."""

    def __init__(self, config: VQCodecConfig, tensors: dict):
        import torch

        from ttt.audio.decoder import DecoderConfig, MelDecoder
        from ttt.audio.vocoder import MelConfig, MelSpectrogram

        self.config = config
        self.centroids = torch.as_tensor(tensors["centroids"]).float()
        self.feature_mean = torch.as_tensor(tensors["feature_mean"]).float()
        self.feature_std = torch.as_tensor(tensors["feature_std"]).float()
        if self.centroids.shape[0] != config.codebook_size:
            raise ValueError(f"centroids hold {self.centroids.shape[0]} codes but config says {config.codebook_size}")
        self.mel = MelSpectrogram(MelConfig(**config.mel), tensors.get("mel_filterbank"))
        self.decoder = MelDecoder(DecoderConfig(**config.decoder))
        decoder_state = {k[len("decoder.") :]: v.float() for k, v in tensors.items() if k.startswith("decoder.")}
        if self.decoder.config.code_dim:  # the decoder's copy of the codebook is not stored twice
            padding = torch.zeros(1, self.centroids.shape[1])
            decoder_state["centroids"] = torch.cat([self.centroids, padding])
        self.decoder.load_state_dict(decoder_state)
        self.decoder.eval()

    @cached_property
    def features(self):
        from ttt.audio.features import make_feature_extractor

        return make_feature_extractor(self.config.features)

    @property
    def frame_rate(self) -> float:
        return 50.0 / self.config.pool

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def sample_rate(self) -> int:
        return self.mel.config.sample_rate

    def frame_features(self, wave: np.ndarray, sample_rate: int):
        """Standardised, pooled feature frames (n_codes, dim) for a validated wave: what k-means sees."""
        import torch

        from ttt.audio.features import pool

        wave = resample(check_wave(wave, sample_rate), sample_rate, self.features.sample_rate)
        shortest = 0.75 / self.frame_rate  # measured: 30 ms make the first 40 ms code, 29.9 ms none
        if len(wave) < shortest * self.features.sample_rate:
            raise ValueError(f"audio of {1000 * len(wave) / self.features.sample_rate:.0f} ms is too short: "
                             f"the codec needs at least {1000 * shortest:.0f} ms to make one code")
        frames = torch.from_numpy(pool(self.features(wave), self.config.pool))
        return (frames - self.feature_mean) / self.feature_std

    def encode(self, wave: np.ndarray, sample_rate: int) -> list[int]:
        from ttt.audio.kmeans import nearest

        return nearest(self.frame_features(wave, sample_rate), self.centroids).tolist()

    def decode_mel(self, codes) -> "torch.Tensor":
        import torch

        codes = torch.from_numpy(self._check_codes(codes))
        with torch.no_grad():
            return self.decoder(codes[None])[0]

    def decode(self, codes: list[int]) -> tuple[np.ndarray, int]:
        wave = self.mel.invert(self.decode_mel(codes), n_iter=self.config.griffin_lim_iters)
        return wave, self.sample_rate

    def tensors(self) -> dict:
        """Flat tensor dict for safetensors; decoder weights in float16 to halve the shipped size."""
        out = {"centroids": self.centroids, "feature_mean": self.feature_mean, "feature_std": self.feature_std,
               "mel_filterbank": self.mel.filterbank}
        for name, value in self.decoder.state_dict().items():
            if name != "centroids":
                out[f"decoder.{name}"] = value.detach().half().contiguous()
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"type": self.codec_type, **asdict(self.config)}
        save_file({k: v.contiguous() for k, v in self.tensors().items()}, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "VQMelCodec":
        from safetensors.torch import load_file

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        config.pop("type", None)
        return cls(VQCodecConfig(**config), load_file(str(directory / "model.safetensors")))
