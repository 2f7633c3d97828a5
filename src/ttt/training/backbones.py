"""Small backbones built locally: tiny Qwen2/Llama configs (the text tokenizer is `ttt.vocab.train_bpe_tokenizer`).

These give the embedded default model, the tests and the benchmarks a real Hugging Face model and
tokenizer without downloading anything.
"""
from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

def tiny_backbone(
    vocab_size: int,
    family: str = "qwen2",
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 4096,
    attn_implementation: str = "sdpa",
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised Qwen2 or Llama causal LM of the given size."""
    import torch

    kinds = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if family not in kinds:
        raise ValueError(f"family must be one of {sorted(kinds)}, got {family!r}")
    config_cls, model_cls = kinds[family]
    config = config_cls(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
    )
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    return model_cls(config)
