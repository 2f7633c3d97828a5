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
    example: EncodedExample, config: TtTConfig, generator: torch.Generator | None = None
) -> EncodedExample:
    """SST: with probability `quad_span_truncation_prob`, cut the example's final variable-length span.

    A random share (in `sst_keep_range`) of its codes is kept. By default the closing token and
    everything after it are dropped (see `TtTConfig.sst_keep_closing_token`).
    """
    if config.quad_span_truncation_prob == 0.0 or _rand(generator, 1).item() >= config.quad_span_truncation_prob:
        return example
    last = ((example.modality == Modality.LAST_SPAN) & example.trainable).nonzero().flatten()
    if last.numel() == 0:
        return example
    run = example.span[last[-1]]
    where = (example.span == run).nonzero().flatten()
    start, closer = int(where[0]), int(where[-1])
    n_codes = closer - start
    lo = max(1, int(config.sst_keep_range[0] * n_codes))
    hi = max(lo, int(config.sst_keep_range[1] * n_codes))
    keep = lo + int(torch.randint(hi - lo + 1, (1,), generator=generator))
    if keep >= n_codes:
        return example
    cut = start + keep
    fields = (example.input_ids, example.modality, example.span, example.trainable)
    if config.sst_keep_closing_token:
        fields = tuple(torch.cat([f[:cut], f[closer:]]) for f in fields)
    else:
        fields = tuple(f[:cut] for f in fields)
    return EncodedExample(*fields, {**example.meta, "sst_truncated": True})


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
