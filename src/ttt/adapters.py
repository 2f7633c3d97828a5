"""Adapter-only models: a LoRA-trained TtT model shipped as what training changed, applied over its base.

A LoRA run over a pretrained backbone changes only the LoRA matrices and the rows of the tokens TtT adds
(audio codes, span specials, chat markers; peft "trainable tokens"). Its release directory therefore holds:
- `adapters.safetensors`: those tensors (float32, float16 or bfloat16), named as in the peft-wrapped backbone;
- `adapters.json`: the LoRA settings, the base backbone's reference and fingerprint (`ttt.backbone_source`)
  and the base's embedding row count;
- `ttt_config.json`, the tokenizer (base vocabulary + TtT tokens, with the ids training gave them) and,
  optionally, `decoding.json`.
`TtTModel.from_pretrained` recognises it by `adapters.json`: it loads the base, adds the TtT tokens, applies
the adapters and token rows and merges them (peft `merge_and_unload`), so inference runs a plain model.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

ADAPTERS_CONFIG = "adapters.json"
ADAPTERS_WEIGHTS = "adapters.safetensors"
FORMAT = 1


def is_adapter_dir(directory: str | Path) -> bool:
    """Whether `directory` holds an adapter-only TtT model (its `adapters.json`)."""
    return (Path(directory) / ADAPTERS_CONFIG).is_file()


def ttt_token_ids(model) -> list[int]:
    """Ids of every token TtT adds: audio codes, span specials, mask and chat markers."""
    v = model.vocab
    specials = {v.begin_of_audio, v.end_of_audio, v.end_of_span, v.begin_of_last_span, v.end_of_last_span,
                v.mask, v.im_start, v.im_end}
    return sorted(specials | set(range(v.audio_start, v.audio_start + v.codebook_size)))


def wrap_lora(model, r: int, alpha: int, dropout: float, target_modules: list[str], train_ttt_tokens: bool) -> None:
    """Wrap `model.backbone` with LoRA (peft); with `train_ttt_tokens`, the TtT token rows are trainable
    tokens (the output head's too when it is not tied to the embeddings)."""
    from peft import LoraConfig, get_peft_model

    indices = None
    if train_ttt_tokens:
        ids = ttt_token_ids(model)
        tied = model.backbone.config.get_text_config().tie_word_embeddings
        indices = {"embed_tokens": ids} if tied else {"embed_tokens": ids, "lm_head": ids}
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                      trainable_token_indices=indices, bias="none")
    model.backbone = get_peft_model(model.backbone, lora)


def assemble(backbone, tokenizer, config, lora: dict, state: dict, base_rows: int, where: str):
    """The merged TtTModel: `backbone` (the base, as loaded) + TtT tokens + LoRA `state` (names relative to
    the peft-wrapped backbone). Every row the TtT tokens add must be among the trained rows, or it would keep
    a random initialisation that differs from training's."""
    import torch

    from ttt.model import TtTModel

    rows = backbone.get_input_embeddings().num_embeddings
    if rows != base_rows:
        raise ValueError(f"{where}: the base model has {rows} embedding rows, the adapters were trained on "
                         f"one with {base_rows}")
    model = TtTModel.from_backbone(backbone, tokenizer, **asdict(config))
    added = set(range(base_rows, len(tokenizer)))
    trained = set(ttt_token_ids(model)) if lora.get("train_ttt_tokens") else set()
    if added - trained:
        raise ValueError(f"{where}: tokens {sorted(added - trained)[:3]}... have no trained rows")
    wrap_lora(model, **lora)
    params = dict(model.backbone.named_parameters())
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in state)
    unknown = sorted(set(state) - set(params))
    if missing or unknown:
        raise ValueError(f"{where}: adapter weights do not match the model (missing {missing[:2]}, "
                         f"unknown {unknown[:2]})")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
    model.backbone = model.backbone.merge_and_unload()
    return model


def load_adapter_model(directory: str | Path, **model_kwargs):
    """Load an adapter-only model directory over its base; `model_kwargs` as for `TtTModel.from_pretrained`
    (`dtype`, `attn_implementation`, ...): the base loads in float32, the merged model is then cast.

    The tokenizer is the directory's own (export checked that the base's plus the TtT tokens gives exactly
    its ids); the base's is not converted again, since the SHA-256 check already pins the base file."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from ttt.backbone_source import base_location, load_checked_base
    from ttt.config import TtTConfig

    directory = Path(directory)
    meta_file = directory / ADAPTERS_CONFIG
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file}: adapter format {meta.get('format')!r} is not {FORMAT}")
    location, gguf = base_location(meta["base"], directory)
    dtype = model_kwargs.pop("dtype", None) or model_kwargs.pop("torch_dtype", None) or torch.float32
    backbone = load_checked_base(meta["base"], location, gguf, str(directory), dtype=torch.float32, **model_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(directory / ADAPTERS_WEIGHTS).items()}
    model = assemble(backbone, tokenizer, TtTConfig.load(directory), meta["lora"], state, meta["base_rows"],
                     str(directory))
    model.backbone.to(dtype)
    return model
