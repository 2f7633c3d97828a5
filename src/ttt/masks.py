"""The modality-aware attention mask: one definition, rendered dense (SDPA/eager) or as a Flex BlockMask.

A query may attend a key when both belong to the same packed example and either the key is not later
than the query (causal text) or both lie in the same audio run (a span and its mask tokens, or the user's
input audio) — which makes each run bidirectional within itself while everything after it sees it as
ordinary context. Padding attends only to itself so that no softmax row is empty.

`doc_ids` (example index per token, -1 for padding) and `span_ids` (run index, unique within a row, 0 for
tokens outside runs) are (batch, kv_len) tensors. Queries are the last `q_len` positions, which is how a
KV-cached block sees its prefix, or the `q_len` positions from `q_offset` on, which is how a block sees a
pre-allocated (static) cache whose later slots are not written yet (give those slots `doc_ids` -1).
"""
from __future__ import annotations

from typing import Callable

import torch


def mask_mod(doc_ids: torch.Tensor, span_ids: torch.Tensor, q_offset: int = 0) -> Callable:
    """The single definition of who-sees-whom, as a Flex `mask_mod(b, h, q_idx, kv_idx)`.

    It uses only indexing and elementwise ops, so it also evaluates on broadcast index tensors.
    """

    def allowed(b, h, q_idx, kv_idx):
        q = q_idx + q_offset
        same_doc = (doc_ids[b, q] == doc_ids[b, kv_idx]) & (doc_ids[b, kv_idx] >= 0)
        same_run = (span_ids[b, q] == span_ids[b, kv_idx]) & (span_ids[b, q] > 0)
        return (same_doc & ((kv_idx <= q) | same_run)) | (q == kv_idx)

    return allowed


def dense_mask(
    doc_ids: torch.Tensor, span_ids: torch.Tensor, q_len: int | None = None, q_offset: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean (batch, 1, q_len, kv_len) mask, True = may attend."""
    batch, kv_len = doc_ids.shape
    q_len = kv_len if q_len is None else q_len
    dev = doc_ids.device
    b = torch.arange(batch, device=dev)[:, None, None, None]
    q = torch.arange(q_len, device=dev)[None, None, :, None]
    kv = torch.arange(kv_len, device=dev)[None, None, None, :]
    return mask_mod(doc_ids, span_ids, kv_len - q_len if q_offset is None else q_offset)(b, 0, q, kv)


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask -> additive float mask (0 where allowed, dtype min elsewhere) for eager attention."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def block_mask(doc_ids: torch.Tensor, span_ids: torch.Tensor, q_len: int | None = None, q_offset=None):
    """The same mask as a FlexAttention `BlockMask` (for attn_implementation="flex_attention")."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, kv_len = doc_ids.shape
    q_len = kv_len if q_len is None else q_len
    offset = kv_len - q_len if q_offset is None else q_offset
    return create_block_mask(
        mask_mod(doc_ids, span_ids, offset), batch, None, q_len, kv_len, device=doc_ids.device
    )


def attention_mask_for(
    model, doc_ids: torch.Tensor, span_ids: torch.Tensor, q_len: int | None = None, q_offset=None
):
    """The rendering a Hugging Face model's attention implementation expects."""
    impl = model.config._attn_implementation
    if impl == "flex_attention":
        return block_mask(doc_ids, span_ids, q_len, q_offset)
    mask = dense_mask(doc_ids, span_ids, q_len, q_offset)
    if impl == "sdpa":
        return mask
    return additive(mask, model.dtype)
