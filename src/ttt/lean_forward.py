"""A lean decoding forward for Llama/Qwen2-family backbones: the same arithmetic as the Hugging Face
modules, in far fewer operations per layer.

Why: on a CPU a small model's decoding step is bound by per-operation dispatch, not by its matrix
products. A Hugging Face Qwen2 layer runs about 80 tensor operations (separate q/k/v projections, rotary
embeddings by slicing and concatenating, key/value heads repeated for grouped-query attention, a cache
update that builds an index, RMSNorm in six steps); this forward runs about 25, in the gpt-fast manner:

- q, k and v come from one matrix product (their weights concatenated once, on CPU), and so do gate and up;
- rotary embeddings rotate q and k together, with one `roll` and a sign-folded sine (exactly
  `rotate_half`: `(-x) * s == x * (-s)` in IEEE arithmetic);
- grouped-query attention folds each key/value head's query heads into its query rows, so one
  `scaled_dot_product_attention` call serves them without copying keys and values;
- keys and values are written straight into the engine's pre-allocated cache (`StaticLayer` buffers).

It reads the backbone's own modules (weights, epsilons, activation, rotary table), so it needs no weights
of its own beyond the concatenated ones on CPU, which are refilled when a parameter changes (training
between turns, `.to()`); on a GPU each projection reads its module's weight. `LeanDecoder.unsupported`
says why a backbone cannot use it (another family, sliding windows, an attention other than SDPA); the
engine then keeps the Hugging Face modules. Outputs match the Hugging Face forward to float rounding
(tests/generate/test_lean_forward.py), and decoded tokens equal the eager engine's.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ttt.masks import dense_mask

FAMILIES = ("qwen2", "llama")
FUSE_UP_TO_BYTES = 256 * 2**20  # concatenated copies beyond this would cost memory for a gain lost in the matmuls
_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
_FUSED = (0, 1, 2, 4, 5)  # indices into a layer's `_ATTN + _MLP` projections whose weights are concatenated


class LeanDecoder:
    """`decoder(ids, doc, spans, pos, offset, cache)` -> final hidden states, as `TtTModel.backbone_forward(
    ..., hidden_only=True)` computes them (the engine's decoding-forward signature). `fuse`: concatenate the
    q/k/v and gate/up weights (default: when the weights are on the CPU and the copies take at most
    `FUSE_UP_TO_BYTES`: the saving is dispatch, which only a small model's step notices)."""

    def __init__(self, backbone: nn.Module, fuse: bool | None = None) -> None:
        why = self.unsupported(backbone)
        if why:
            raise ValueError(f"the lean decoding forward does not support this backbone: {why}")
        self.body = backbone.get_decoder()
        cfg = backbone.config.get_text_config(decoder=True)
        attn = self.body.layers[0].self_attn
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scale = attn.scaling
        self.sources = [
            [getattr(layer.self_attn, n) for n in _ATTN] + [getattr(layer.mlp, n) for n in _MLP]
            for layer in self.body.layers
        ]
        self.copy_bytes = sum(p.numel() * p.element_size() for layer in self.sources for i in _FUSED
                              for p in layer[i].parameters())
        self.fuse = fuse
        self.fused: list[dict] = []
        self.signature: tuple = ()

    @staticmethod
    def unsupported(backbone: nn.Module) -> str | None:
        """Why this forward cannot stand in for `backbone`'s, or None if it can."""
        cfg = backbone.config.get_text_config(decoder=True)
        if cfg.model_type not in FAMILIES:
            return f"model type {cfg.model_type!r} (supported: {', '.join(FAMILIES)})"
        if backbone.config._attn_implementation != "sdpa":
            return f"attention implementation {backbone.config._attn_implementation!r} (needs 'sdpa')"
        if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
            return "sliding-window layers"
        body = backbone.get_decoder()
        if getattr(body, "rotary_emb", None) is None:
            return "no rotary embedding module"
        for layer in body.layers:
            parts = [getattr(layer.self_attn, n, None) for n in _ATTN] + [getattr(layer.mlp, n, None) for n in _MLP]
            if any(type(p) is not nn.Linear for p in parts):
                return "projections that are not plain nn.Linear (adapters or quantized layers)"
            norms = (layer.input_layernorm, layer.post_attention_layernorm)
            if any(not hasattr(n, "variance_epsilon") for n in norms) or getattr(layer.self_attn, "q_norm", None):
                return "normalisations other than the Llama/Qwen2 RMSNorm"
        if getattr(cfg, "hidden_act", None) not in ("silu", "swish"):
            return f"activation {getattr(cfg, 'hidden_act', None)!r}"
        return None

    @torch.compiler.disable
    def refresh(self) -> list[dict] | None:
        """Per layer: the concatenated qkv and gate_up weights, refilled in place when a parameter changed
        (training between turns, `.to()`); None where the weights are not fused: off the CPU each projection
        reads its module's weight (a CUDA graph makes the extra products free, and replays without calling
        Python, so copies there would neither pay nor follow a change of the weights), and so it does for a
        model whose copies would pass `FUSE_UP_TO_BYTES`."""
        on_cpu = self.sources[0][0].weight.device.type == "cpu"
        if not (on_cpu and self.copy_bytes <= FUSE_UP_TO_BYTES if self.fuse is None else self.fuse):
            self.fused, self.signature = [], ()
            return None
        # only the fused projections' tensors, read as attributes: this runs before every decoding step, and
        # walking `parameters()` of every module took a tenth of a small model's step
        params = [p for layer in self.sources for i in _FUSED for p in (layer[i].weight, layer[i].bias)
                  if p is not None]
        signature = tuple((p.data_ptr(), p._version) for p in params)
        if signature == self.signature:
            return self.fused
        fresh = not self.fused or any(a[0] != b[0] for a, b in zip(signature, self.signature))
        if fresh:
            self.fused = [{} for _ in self.sources]
        with torch.no_grad():
            for layer, out in zip(self.sources, self.fused):
                q, k, v, o, gate, up, down = layer
                parts = {
                    "qkv": torch.cat([q.weight, k.weight, v.weight]),
                    "gate_up": torch.cat([gate.weight, up.weight]),
                }
                if q.bias is not None:
                    parts["qkv_bias"] = torch.cat([q.bias, k.bias, v.bias])
                if gate.bias is not None:
                    parts["gate_up_bias"] = torch.cat([gate.bias, up.bias])
                for name, value in parts.items():
                    if fresh:
                        out[name] = value
                    else:
                        out[name].copy_(value)
        self.signature = signature
        return self.fused

    def __call__(self, ids, doc, spans, pos, offset, cache):
        weights = self.refresh()
        body, hd = self.body, self.head_dim
        nq, nkv = self.heads, self.kv_heads
        rep = nq // nkv
        rows, new = ids.shape
        h = body.embed_tokens(ids)
        cos, sin = body.rotary_emb(h, pos)  # (rows, new, hd): the backbone's own table and scaling
        half = hd // 2
        cos = cos[:, :, None]
        sin = torch.cat([-sin[..., :half], sin[..., half:]], -1)[:, :, None]
        if new == 1 and offset is None and bool((doc == 0).all()):  # the last query, one document: it sees every key
            mask = None
        else:
            mask = dense_mask(doc, spans, new, offset)  # (rows, 1, new, keys)
        if rep > 1 and mask is not None:  # query rows grouped as (head within group, position)
            mask = mask.expand(rows, rep, new, mask.shape[-1]).reshape(rows, 1, rep * new, mask.shape[-1])
        keys_len = doc.shape[1]
        slots = pos[0]
        for index, (layer, src) in enumerate(zip(body.layers, self.sources)):
            w = weights[index] if weights else None
            x = _rms_norm(h, layer.input_layernorm)
            if w:
                qkv = F.linear(x, w["qkv"], w.get("qkv_bias"))
            else:
                qkv = torch.cat([F.linear(x, p.weight, p.bias) for p in src[:3]], -1)
            qkv = qkv.view(rows, new, nq + 2 * nkv, hd)
            qk = qkv[:, :, : nq + nkv]
            qk = qk * cos + qk.roll(half, -1) * sin
            q = qk[:, :, :nq].transpose(1, 2).reshape(rows, nkv, rep * new, hd)
            k = qk[:, :, nq:].transpose(1, 2)
            v = qkv[:, :, nq + nkv :].transpose(1, 2)
            if cache is not None:
                lay = cache.layers[index]
                if not lay.is_initialized:
                    lay.lazy_initialization(k, v)
                lay.keys.index_copy_(2, slots, k)
                lay.values.index_copy_(2, slots, v)
                lay.cumulative_length.add_(new)
                k, v = lay.keys[:, :, :keys_len], lay.values[:, :, :keys_len]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            out = out.view(rows, nkv, rep, new, hd).permute(0, 3, 1, 2, 4).reshape(rows, new, nq * hd)
            o, down = src[3], src[6]
            h = h + F.linear(out, o.weight, o.bias)
            x = _rms_norm(h, layer.post_attention_layernorm)
            if w:
                gate, up = F.linear(x, w["gate_up"], w.get("gate_up_bias")).chunk(2, -1)
            else:
                gate, up = (F.linear(x, p.weight, p.bias) for p in src[4:6])
            h = h + F.linear(F.silu(gate) * up, down.weight, down.bias)
        return _rms_norm(h, body.norm)


def _rms_norm(h: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """The Llama/Qwen2 RMSNorm module's arithmetic (float32 statistics, weight applied in the input dtype):
    in float32 PyTorch's one fused `rms_norm` (the same statistics, one operation instead of five)."""
    if h.dtype == torch.float32 and norm.weight.dtype == torch.float32:
        return F.rms_norm(h, h.shape[-1:], norm.weight, norm.variance_epsilon)
    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(h.dtype)
