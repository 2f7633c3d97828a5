"""Training-time noising: SST and end padding on examples, then PPM / absorbing-diffusion masking on a batch.

All randomness comes from one `torch.Generator`, so a seeded collation is reproducible.
"""
from __future__ import annotations

import torch

from ttt.config import TtTConfig
from ttt.format import EncodedExample, Modality
from ttt.vocab import Vocab


def banom(config: TtTConfig, generator: torch.Generator | None = None) -> bool:
    """BANOM: whether this batch stays clean (text loss only), with probability `unmasked_audio_prob`."""
    return config.mode == "ttt" and _rand(generator, 1).item() < config.unmasked_audio_prob


def _rand(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def truncate_last_span(
    example: EncodedExample, config: TtTConfig, generator: torch.Generator | None = None, im_start: int | None = None
) -> EncodedExample:
    """SST: with probability `quad_span_truncation_prob`, cut a final variable-length span.

    A random share (in `sst_keep_range`) of its codes is kept. `sst_scope` "example": one draw, on the
    example's last final span, and everything after the cut goes. "message": one draw per assistant message
    (a trained stretch starting at an `<|im_start|>`, id `im_start`, which this scope needs), on that
    message's last final span, and only the rest of that message goes; later messages stay. With
    `sst_keep_closing_token` only the cut codes go (see `TtTConfig`).
    """
    if config.quad_span_truncation_prob == 0.0:
        return example
    if config.sst_scope == "message":
        if im_start is None:
            raise ValueError("sst_scope 'message' needs the <|im_start|> id to find the messages")
        messages = _assistant_messages(example, im_start)
    else:
        messages = [(0, len(example))]
    keep = torch.ones(len(example), dtype=torch.bool)
    for lo, hi in messages:
        if _rand(generator, 1).item() >= config.quad_span_truncation_prob:
            continue
        last = ((example.modality[lo:hi] == Modality.LAST_SPAN) & example.trainable[lo:hi]).nonzero().flatten()
        if last.numel() == 0:
            continue
        run = example.span[lo + last[-1]]
        where = (example.span == run).nonzero().flatten()
        start, closer = int(where[0]), int(where[-1])
        n_codes = closer - start
        low = max(1, int(config.sst_keep_range[0] * n_codes))
        high = max(low, int(config.sst_keep_range[1] * n_codes))
        kept = low + int(torch.randint(high - low + 1, (1,), generator=generator))
        if kept < n_codes:
            keep[start + kept : closer if config.sst_keep_closing_token else hi] = False
    if keep.all():
        return example
    fields = (example.input_ids, example.modality, example.span, example.trainable)
    return EncodedExample(*(f[keep] for f in fields), {**example.meta, "sst_truncated": True})


def _assistant_messages(example: EncodedExample, im_start: int) -> list[tuple[int, int]]:
    """(start, end) of each message that holds trained tokens; a message runs from its `<|im_start|>` to the
    next one (its `<|im_end|>` and newline included). A plain-text example is one message."""
    starts = (example.input_ids == im_start).nonzero().flatten().tolist()
    bounds = [0, *[s for s in starts if s > 0], len(example)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if example.trainable[lo:hi].any()]


def pad_last_span(
    example: EncodedExample, config: TtTConfig, vocab: Vocab, generator: torch.Generator | None = None
) -> EncodedExample:
    """Append 0..`last_span_pad` mask tokens to the final span's run, right after its closing token.

    They carry no loss (modality SPAN_PAD); they only make training runs look like the inference block
    that contains the end of speech (see `TtTConfig.last_span_pad`).

    In "nar" mode the response is padded instead, with trained `<|im_end|>` copies after its own: a NAR
    model fills a block longer than its answer, and these (LLaDA's end-of-text padding) teach it that every
    position past the end is `<|im_end|>`, so the first one it commits ends the turn. They join the
    response's bidirectional run (contiguous trained tokens).
    """
    nar = config.mode == "nar"
    ends = (example.input_ids == (vocab.im_end if nar else vocab.end_of_last_span)) & example.trainable
    if config.last_span_pad == 0 or not ends.any():
        return example
    at = int(ends.nonzero()[-1]) + 1
    n = int(torch.randint(config.last_span_pad + 1, (1,), generator=generator))
    if n == 0:
        return example
    if nar:
        token, modality, trained = vocab.im_end, int(example.modality[at - 1]), True
    else:
        token, modality, trained = vocab.mask, int(Modality.SPAN_PAD), False
    fields = (example.input_ids, example.modality, example.span, example.trainable)
    values = (token, modality, int(example.span[at - 1]), trained)
    return EncodedExample(
        *(torch.cat([f[:at], torch.full((n,), v, dtype=f.dtype), f[at:]]) for f, v in zip(fields, values)), example.meta
    )


def noise_batch(
    batch: dict[str, torch.Tensor], config: TtTConfig, mask_id: int, generator: torch.Generator | None = None
) -> None:
    """Mask the batch in place: sets `input_ids`, `masked`, `p_mask` (per token) and `n_maskable` (per doc).

    ttt: per example t ~ U(eps, 1] over assistant audio spans (codes + closing token), with PPM keeping the
    audio before one random span clean (BANOM batches are not noised at all; `collate` decides that).
    nar: every trained token is maskable.
    The audio loss is normalised by `n_maskable`, the count of maskable tokens after PPM (as the reference).
    """
    doc, trainable, modality = batch["doc_ids"], batch["trainable"], batch["modality"]
    n_docs = int(batch["n_maskable"].numel())
    if config.mode == "nar":
        maskable = trainable.clone()
    else:
        maskable = trainable & ((modality == Modality.AUDIO_SPAN) | (modality == Modality.LAST_SPAN))
        _preserve_prefixes(maskable, doc, batch["span_ids"], config.prefix_preservation_ratio, n_docs, generator)
    t = _rand(generator, n_docs)
    p_doc = (1.0 - config.eps) * t + config.eps
    p = torch.where(doc >= 0, p_doc[doc.clamp(min=0)], torch.ones(()))
    masked = maskable & (_rand(generator, *doc.shape) < p)
    batch["masked"] = masked
    batch["p_mask"] = torch.where(maskable, p, torch.ones(()))
    batch["n_maskable"] = torch.zeros(n_docs).index_add_(0, doc[maskable], torch.ones(int(maskable.sum())))
    batch["input_ids"] = torch.where(masked, torch.full_like(batch["input_ids"], mask_id), batch["input_ids"])


def _preserve_prefixes(
    maskable: torch.Tensor,
    doc: torch.Tensor,
    span_ids: torch.Tensor,
    ratio: float,
    n_docs: int,
    generator: torch.Generator | None,
) -> None:
    """PPM: for a `ratio` share of examples, pick one maskable span at random; audio before it stays clean."""
    if ratio == 0.0:
        return
    chosen = (_rand(generator, n_docs) < ratio).nonzero().flatten().tolist()
    for d in chosen:
        rows, cols = ((doc == d) & maskable).nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        row = int(rows[0])
        runs = torch.unique(span_ids[row, cols])
        run = runs[torch.randint(runs.numel(), (1,), generator=generator)]
        start = int(cols[span_ids[row, cols] == run].min())
        maskable[row, cols[cols < start]] = False
