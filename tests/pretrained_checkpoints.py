"""Tiny random-weight checkpoints in the layouts of released codecs, built from transformers' own classes."""
from __future__ import annotations

import math
from pathlib import Path

import torch


def glm_checkpoint(directory: Path, codebook: int = 64, layers: int = 2, prefix: str = "", causal: bool = True,
                   pool: int = 4, block: int | None = 200, max_positions: int = 1500) -> Path:
    """GLM-4-Voice's tokenizer layout: `WhisperEncoder` tensors (bare or under `prefix`) without the final norm,
    plus `codebook` and `embed_positions2`; the release's config fields; a 16-bin `WhisperFeatureExtractor`."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    config = WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=layers, encoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2,
                           max_source_positions=max_positions, pooling_kernel_size=pool, pooling_type="avg",
                           pooling_position=layers, quantize_position=layers, quantize_vocab_size=codebook,
                           quantize_encoder_only=True, quantize_causal_block_size=block,
                           encoder_causal_convolution=causal, encoder_causal_attention=False,
                           architectures=["WhisperVQEncoder"])
    encoder = WhisperEncoder(config)
    tensors = {prefix + k: v.contiguous() for k, v in encoder.state_dict().items() if not k.startswith("layer_norm")}
    tensors[prefix + "codebook.weight"] = torch.randn(codebook, config.d_model)
    tensors[prefix + "embed_positions2.weight"] = torch.randn(math.ceil(max_positions / pool), config.d_model)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"))
    config.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=16).save_pretrained(directory)
    return directory


def mimi_checkpoint(directory: Path) -> Path:
    """A 4-codebook, 64-code `MimiModel` at the release's 24 kHz / 12.5 Hz, saved by `save_pretrained`."""
    from transformers import MimiConfig, MimiModel

    torch.manual_seed(0)
    config = MimiConfig(hidden_size=64, num_filters=4, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=2, head_dim=32, intermediate_size=64, codebook_size=64, codebook_dim=16,
                        vector_quantization_hidden_dimension=16, num_quantizers=4, upsample_groups=64)
    MimiModel(config).save_pretrained(directory)
    return directory
