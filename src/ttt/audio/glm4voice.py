"""GLM-4-Voice's speech tokenizer (the TtT paper's codec): a Whisper encoder cut at a vector-quantiser.

The released tokenizer (`THUDM/glm-4-voice-tokenizer`) is a Whisper-large-v3-shaped encoder whose
convolutions are causal, whose attention is block-causal (blocks of `quantize_causal_block_size` 50 Hz
frames), whose hidden states are average-pooled by `pooling_kernel_size` after layer `pooling_position`
and snapped to the nearest of `quantize_vocab_size` codebook vectors after layer `quantize_position`:
16,384 codes at 12.5 per second. Its checkpoint holds `conv1`, `conv2`, `embed_positions`, `layers.N`
(transformers' `WhisperEncoderLayer` parameter names), `codebook` and `embed_positions2`, bare or under
`model.encoder.`; `config.json` is a `WhisperConfig` plus those fields; `preprocessor_config.json` is a
`WhisperFeatureExtractor` (128 mel bins). This module rebuilds that encoder from transformers' layers
(the forked modeling file is not needed) and encodes audio in 30 s segments, as the release does.

Decoding: the release renders codes with CosyVoice's flow-matching decoder and HiFT vocoder
(`THUDM/glm-4-voice-decoder`), which this library does not run (no `cosyvoice` package installs with
this project's torch), so `decode` needs a decoder trained here for these codes:
`ttt codec train --encoder glm4voice:SOURCE --data audio.jsonl --out DIR`, then `--codec DIR`.
"""
from __future__ import annotations

import math
import numpy as np

from ttt.audio.codec import register_codec
from ttt.audio.io import check_wave, resample
from ttt.audio.pretrained import PretrainedCodec, read_weights, resolve_source

VQ_FIELDS = ("quantize_vocab_size", "quantize_position", "pooling_kernel_size", "pooling_position")
SEGMENT_SECONDS = 30  # the encoder's 1,500 positions at 50 Hz


def build_encoder(config):
    """The Whisper-VQ encoder for a `WhisperConfig` carrying the VQ fields (an `nn.Module`)."""
    import torch
    from torch import nn
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    class WhisperVQEncoder(nn.Module):
        """Causal or centred convolutions -> Whisper layers with pooling and VQ -> code indices."""

        def __init__(self, config):
            super().__init__()
            self.config = config
            d, causal = config.d_model, bool(getattr(config, "encoder_causal_convolution", False))
            self.left_pad = 2 if causal else 0  # kernel 3: causal pads 2 frames on the left, centred 1 each side
            self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=0 if causal else 1)
            self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=0 if causal else 1)
            self.embed_positions = nn.Embedding(config.max_source_positions, d)
            self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(config.quantize_position))
            pool = config.pooling_kernel_size
            self.pool = nn.AvgPool1d(pool) if getattr(config, "pooling_type", "max") == "avg" else nn.MaxPool1d(pool)
            self.codebook = nn.Embedding(config.quantize_vocab_size, d)
            # in the checkpoint for the layers after the quantiser, which code extraction never runs
            self.embed_positions2 = nn.Embedding(math.ceil(config.max_source_positions / pool), d)

        def _conv(self, conv, x):
            return conv(nn.functional.pad(x, (self.left_pad, 0)) if self.left_pad else x)

        def _mask(self, valid: torch.Tensor, block: int | None, dtype) -> torch.Tensor:
            """Additive (B, 1, T, T) mask: padding keys hidden; with `block`, block-causal attention."""
            n = valid.shape[1]
            allowed = valid[:, None, :].bool().expand(-1, n, -1)
            if block:
                idx = torch.arange(n)
                allowed = allowed & ((idx[None, :] <= idx[:, None]) | (idx[None, :] // block == idx[:, None] // block))
            return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

        def hidden(self, features: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(states at the quantiser (B, T', d), their validity (B, T')) for log-mel `features` (B, mels, T)."""
            cfg = self.config
            x = nn.functional.gelu(self._conv(self.conv1, features))
            x = nn.functional.gelu(self._conv(self.conv2, x)).transpose(1, 2)
            x = x + self.embed_positions.weight[: x.shape[1]]
            valid = attention_mask[:, :: self.conv1.stride[0] * self.conv2.stride[0]]
            block = getattr(cfg, "quantize_causal_block_size", None)
            mask = self._mask(valid, block, x.dtype)
            for index, layer in enumerate(self.layers, 1):
                x = layer(x, mask)
                if index == cfg.pooling_position:
                    pool = cfg.pooling_kernel_size
                    x = x.transpose(1, 2)
                    if x.shape[-1] % pool:
                        x = nn.functional.pad(x, (0, pool - x.shape[-1] % pool))
                    x = self.pool(x).transpose(1, 2)
                    valid = valid[:, ::pool]
                    mask = self._mask(valid, block // pool if block else None, x.dtype)
            return x, valid

        def forward(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """Code indices (B, T') of the nearest codebook vectors (squared Euclidean distance)."""
            x, _ = self.hidden(features, attention_mask)
            book = self.codebook.weight
            distances = x.pow(2).sum(-1, keepdim=True) - 2 * x @ book.T + book.pow(2).sum(-1)
            return distances.argmin(-1)

    return WhisperVQEncoder(config)


def encoder_state(tensors: dict, config) -> dict:
    """The encoder's tensors from a checkpoint in either layout (bare or under `model.encoder.`)."""
    state = {}
    for name, value in tensors.items():
        for prefix in ("model.encoder.", "encoder."):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        head = name.split(".")[0]
        if head == "layers" and int(name.split(".")[1]) >= config.quantize_position:
            continue  # layers past the quantiser (absent from the encoder-only release)
        if head in ("conv1", "conv2", "embed_positions", "embed_positions2", "layers", "codebook"):
            state[name] = value
    return state


@register_codec("glm4voice")
class GLM4VoiceCodec(PretrainedCodec):
    """GLM-4-Voice's Whisper-VQ tokenizer as an `AudioCodec` (see the module docstring for decoding)."""

    def __init__(self, source: str, encoder, features):
        super().__init__(source)
        self.encoder, self.features = encoder.eval(), features

    @classmethod
    def from_source(cls, source: str) -> "GLM4VoiceCodec":
        import torch
        from transformers import WhisperConfig, WhisperFeatureExtractor

        directory = resolve_source(source, "GLM-4-Voice tokenizer")
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no config.json (not a GLM-4-Voice tokenizer checkpoint)")
        config = WhisperConfig.from_pretrained(directory)
        missing = [f for f in VQ_FIELDS if getattr(config, f, None) is None]
        if missing:
            raise ValueError(f"{directory}/config.json lacks {missing}: not a Whisper-VQ tokenizer checkpoint")
        if getattr(config, "encoder_causal_attention", False):
            raise ValueError(f"{directory}: encoder_causal_attention=true is not supported (the release uses false)")
        if config.pooling_position > config.quantize_position:
            raise ValueError(f"{directory}: pooling_position {config.pooling_position} after quantize_position "
                             f"{config.quantize_position}")
        config._attn_implementation = "sdpa"
        encoder = build_encoder(config)
        state = encoder_state(read_weights(directory), config)
        result = encoder.load_state_dict(state, strict=False)
        if result.missing_keys:
            raise ValueError(f"{directory}: weights missing for {result.missing_keys[:5]}"
                             f"{' ...' if len(result.missing_keys) > 5 else ''}")
        features = WhisperFeatureExtractor.from_pretrained(directory)
        if features.feature_size != config.num_mel_bins:
            raise ValueError(f"{directory}: preprocessor has {features.feature_size} mel bins, the encoder "
                             f"{config.num_mel_bins}")
        encoder.to(torch.float32)
        return cls(str(source), encoder, features)

    @property
    def frame_rate(self) -> float:
        hop = self.features.hop_length * 2 * self.encoder.config.pooling_kernel_size  # conv2 stride 2
        return self.features.sampling_rate / hop

    @property
    def codebook_size(self) -> int:
        return self.encoder.config.quantize_vocab_size

    @property
    def native_sample_rate(self) -> int:
        return 22050  # CosyVoice's HiFT vocoder, which `native_decode` explains is not run here

    def encode(self, wave: np.ndarray, sample_rate: int) -> list[int]:
        """Codes of a wave at any rate: 16 kHz, 30 s segments, padded to whole codes, padding codes dropped."""
        import torch

        rate = self.features.sampling_rate
        wave = resample(check_wave(wave, sample_rate), sample_rate, rate)
        multiple = self.features.hop_length * 2 * self.encoder.config.pooling_kernel_size
        codes: list[int] = []
        for start in range(0, len(wave), SEGMENT_SECONDS * rate):
            segment = wave[start : start + SEGMENT_SECONDS * rate]
            feats = self.features(segment, sampling_rate=rate, return_attention_mask=True, return_tensors="pt",
                                  padding="longest", pad_to_multiple_of=multiple)
            with torch.no_grad():
                ids = self.encoder(feats.input_features.float(), feats.attention_mask)
            valid = feats.attention_mask[:, ::2][:, :: self.encoder.config.pooling_kernel_size].bool()
            codes += ids[valid].tolist()
        return codes

    def native_decode(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        raise ValueError(
            "GLM-4-Voice codes are rendered by CosyVoice's flow decoder + HiFT vocoder (glm-4-voice-decoder), "
            "which this library does not run; train a decoder for these codes: ttt codec train --encoder "
            f"glm4voice:{self.source} --data AUDIO_JSONL --out DIR, then use --codec DIR")

