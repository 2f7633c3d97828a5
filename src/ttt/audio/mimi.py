"""Mimi (Kyutai's codec, transformers' `MimiModel`) as TtT's single code stream: its first, semantic codebook.

Mimi turns 24 kHz audio into 12.5 frames per second, each a stack of residual codes: codebook 0 is
distilled from a self-supervised speech model (the content), codebooks 1.. add the acoustics (voice,
timbre, recording). TtT models one code per frame, so this adapter keeps codebook 0 (`codebook_size`
2,048 in the release): encoding is exact for that stream. Decoding from it alone is lossy: Mimi's decoder
accepts the semantic codebook without the acoustic ones (`MimiModel.decode` with one quantizer), which
keeps words but loses the speaker and much of the quality; a decoder trained here for the semantic codes
(`ttt codec train --encoder mimi:SOURCE ...`) renders one target voice instead. SOURCE is a local folder
saved by `MimiModel.save_pretrained` (config.json + weights) or a hub id such as kyutai/mimi.
"""
from __future__ import annotations

import numpy as np

from ttt.audio.codec import register_codec
from ttt.audio.io import check_wave, resample
from ttt.audio.pretrained import PretrainedCodec, resolve_source


@register_codec("mimi")
class MimiCodec(PretrainedCodec):
    """Mimi's semantic codebook in, semantic-only Mimi decoding (lossy) or a trained decoder out."""

    def __init__(self, source: str, model):
        super().__init__(source)
        self.model = model.eval()

    @classmethod
    def from_source(cls, source: str) -> "MimiCodec":
        import torch
        from transformers import MimiModel

        directory = resolve_source(source, "Mimi")
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no config.json (not a Mimi checkpoint)")
        model = MimiModel.from_pretrained(directory, dtype=torch.float32)
        if model.config.num_semantic_quantizers != 1:
            raise ValueError(f"{directory}: {model.config.num_semantic_quantizers} semantic codebooks; TtT's single "
                             "stream needs exactly one")
        return cls(str(source), model)

    @property
    def frame_rate(self) -> float:
        return float(self.model.config.frame_rate)

    @property
    def codebook_size(self) -> int:
        return self.model.config.codebook_size

    @property
    def native_sample_rate(self) -> int:
        return self.model.config.sampling_rate

    def encode(self, wave: np.ndarray, sample_rate: int) -> list[int]:
        """Codebook 0 of every frame (ceil(seconds * 12.5) codes)."""
        import torch

        wave = resample(check_wave(wave, sample_rate), sample_rate, self.native_sample_rate)
        with torch.no_grad():
            codes = self.model.encode(torch.from_numpy(wave)[None, None], num_quantizers=1).audio_codes
        return codes[0, 0].tolist()

    def native_decode(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        """Mimi's own decoder on the semantic codebook alone (lossy: no acoustic codebooks)."""
        import torch

        with torch.no_grad():
            wave = self.model.decode(torch.from_numpy(codes)[None, None]).audio_values[0, 0]
        return np.clip(wave.numpy().astype(np.float32), -1.0, 1.0), self.native_sample_rate
