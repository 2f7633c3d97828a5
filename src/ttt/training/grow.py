"""`ttt grow`: add decoder layers to a trained TtT model without changing what it computes.

Block expansion (LLaMA Pro, Wu et al. 2024): after every `every`-th layer a copy of that layer is
inserted with its two output projections (attention `o_proj`, MLP `down_proj`) set to zero. A residual
block whose outputs are zero adds nothing, so the grown model's logits equal the source's, and training
continues from the source's loss with more capacity instead of restarting a bigger model from scratch.
The zeroed projections get gradients at once (their inputs are not zero); the rest of the copy follows.

Qwen2/Llama-style decoders only: they name those projections `self_attn.o_proj` and `mlp.down_proj`.
"""
from __future__ import annotations

import copy


def expand_layers(model, every: int = 1):
    """Insert a zero-output copy after every `every`-th decoder layer of `model` (a `TtTModel`), in place;
    returns the model. Layer indices (which the KV cache is keyed by) and the HF config follow."""
    import torch

    if every <= 0:
        raise ValueError(f"--every must be positive, got {every}")
    decoder = model.backbone.model
    layers = list(decoder.layers)
    if every > len(layers):
        raise ValueError(f"--every {every} is more than the model's {len(layers)} layers: nothing would be added")
    config = model.backbone.config
    grown, origin = [], []  # origin: the source layer each grown layer comes from
    for i, layer in enumerate(layers):
        grown.append(layer)
        origin.append(i)
        if (i + 1) % every == 0:
            grown.append(_zero_output_copy(layer))
            origin.append(i)
    for index, layer in enumerate(grown):
        layer.self_attn.layer_idx = index
    decoder.layers = torch.nn.ModuleList(grown)
    config.num_hidden_layers = len(grown)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in origin]
    return model


def _zero_output_copy(layer):
    """A copy of `layer` whose attention and MLP output projections are zero: it adds nothing to the
    residual stream until training moves them."""
    import torch

    twin = copy.deepcopy(layer)
    try:
        outputs = [twin.self_attn.o_proj, twin.mlp.down_proj]
    except AttributeError:
        raise ValueError(
            f"{type(layer).__name__} has no self_attn.o_proj / mlp.down_proj: "
            "block expansion supports Qwen2/Llama-style decoders") from None
    with torch.no_grad():
        for proj in outputs:
            proj.weight.zero_()
            if proj.bias is not None:
                proj.bias.zero_()
    return twin
