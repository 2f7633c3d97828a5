"""Codecs around released weights (GLM-4-Voice's Whisper-VQ tokenizer, Mimi): loading, and a trained decoder.

Such a codec is named on the command line as `TYPE:SOURCE` (`glm4voice:DIR_OR_HUB_ID`), where SOURCE is a
local folder in the official layout or a hub id resolved offline first (the local Hugging Face cache),
then by download where there is a network. Its encoder is the released model, frozen. Its decoder is
either the release's own (where this library can run it) or a `MelDecoder` trained here for its codes by
`ttt codec train --encoder TYPE:SOURCE` (codes -> log-mel -> Griffin-Lim, as the built-in codec): the
saved folder then holds `config.json` (type, source, decoder shape) and the decoder's weights only.
"""
from __future__ import annotations

import json
import logging
import os
from abc import abstractmethod
from pathlib import Path

import numpy as np

from ttt.audio.codec import AudioCodec

log = logging.getLogger(__name__)


def resolve_source(source: str, what: str) -> Path:
    """A local folder for `source`: itself if it is one, else the hub id's snapshot (cache first)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise FileNotFoundError(f"{what}: no folder {source} (give a local folder in the official layout or a "
                                "hub id such as owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss in the cache means: try the network next
        pass
    try:
        return Path(snapshot_download(source))
    except Exception as err:  # noqa: BLE001 - offline, unknown id, gated: all one message for the user
        raise FileNotFoundError(f"{what}: {source} is neither a local folder nor in the Hugging Face cache, and "
                                f"downloading it failed ({type(err).__name__}); on a machine with internet run "
                                f"`huggingface-cli download {source} --local-dir DIR` and pass DIR") from None


class PretrainedCodec(AudioCodec):
    """An `AudioCodec` whose encoder is a released model; `decode` uses a decoder trained for its codes
    when one is attached, else `native_decode` (the release's own decoder, where there is one)."""

    def __init__(self, source: str):
        self.source = source
        self.decoder = None  # (MelDecoder, MelSpectrogram, Griffin-Lim iterations, provenance)

    @classmethod
    @abstractmethod
    def from_source(cls, source: str) -> "PretrainedCodec":
        """Load the released weights from a local folder or hub id."""

    @property
    @abstractmethod
    def native_sample_rate(self) -> int:
        """Sample rate of `native_decode`'s waves."""

    @abstractmethod
    def native_decode(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        """Codes -> wave with the release's own decoder, or a ValueError saying why there is none."""

    @property
    def sample_rate(self) -> int:
        return self.decoder[1].config.sample_rate if self.decoder else self.native_sample_rate

    def attach_decoder(self, decoder_config: dict, mel_config: dict, tensors: dict, griffin_lim_iters: int = 32,
                       trained_on: dict | None = None) -> None:
        """Render codes with a `MelDecoder` (trained by `ttt codec train --encoder`) instead of natively."""
        from ttt.audio.decoder import DecoderConfig, MelDecoder
        from ttt.audio.vocoder import MelConfig, MelSpectrogram

        decoder = MelDecoder(DecoderConfig(**decoder_config))
        if decoder.config.codebook_size != self.codebook_size:
            raise ValueError(f"the decoder was trained for {decoder.config.codebook_size} codes, this codec has "
                             f"{self.codebook_size}")
        decoder.load_state_dict({k: v.float() for k, v in tensors.items()})
        decoder.eval()
        mel = MelSpectrogram(MelConfig(**mel_config))
        self.decoder = (decoder, mel, griffin_lim_iters, trained_on or {})

    def decode(self, codes: list[int]) -> tuple[np.ndarray, int]:
        codes = self._check_codes(codes)
        if self.decoder is None:
            return self.native_decode(codes)
        import torch

        decoder, mel, iters, _ = self.decoder
        with torch.no_grad():
            log_mel = decoder(torch.from_numpy(codes)[None])[0]
        return mel.invert(log_mel, n_iter=iters), mel.config.sample_rate

    def save(self, directory: str | os.PathLike) -> Path:
        """`config.json` naming the source (the released weights are not copied) + the trained decoder, if any."""
        from dataclasses import asdict

        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"type": self.codec_type, "source": str(self.source), "decoder": None}
        if self.decoder:
            decoder, mel, iters, trained_on = self.decoder
            config.update(decoder=asdict(decoder.config), mel=mel.config.to_dict(), griffin_lim_iters=iters,
                          trained_on=trained_on)
            state = {k: v.detach().half().contiguous() for k, v in decoder.state_dict().items()}
            save_file(state, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "PretrainedCodec":
        from safetensors.torch import load_file

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if "source" not in config:
            raise ValueError(f"{directory}/config.json names no 'source' (the released weights this codec wraps)")
        codec = cls.from_source(config["source"])
        if config.get("decoder"):
            codec.attach_decoder(config["decoder"], config["mel"], load_file(str(directory / "model.safetensors")),
                                 config.get("griffin_lim_iters", 32), config.get("trained_on"))
        return codec


def read_weights(directory: Path) -> dict:
    """Every tensor of a checkpoint folder: `*.safetensors` (sharded or not), else `pytorch_model*.bin`."""
    import torch
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if files:
        return {k: v for f in files for k, v in load_file(str(f)).items()}
    files = sorted(directory.glob("pytorch_model*.bin"))
    if files:
        return {k: v for f in files for k, v in torch.load(f, map_location="cpu", weights_only=True).items()}
    raise FileNotFoundError(f"{directory}: no *.safetensors or pytorch_model*.bin weights")
