"""Encoded examples -> a padded (optionally packed) batch of tensors, noised for training.

The batch holds exactly the keyword arguments of `TtTModel.forward`:
- input_ids: ids fed to the model (with `<|mask_token|>` where noised, and as SPAN_PAD); labels: the clean ids;
- modality (`Modality`, PAD = -1), span_ids (audio run, unique within a row, 0 = none),
  doc_ids (example index within the batch, -1 = padding), position_ids (restart per packed example);
- trainable (training targets), masked (noised positions), p_mask (masking probability per token),
  n_maskable (maskable tokens per example, normalises the audio loss).
"""
from __future__ import annotations

import logging

import torch

from ttt.config import TtTConfig
from ttt.format import EncodedExample, Formatter, Modality
from ttt.training.noising import banom, noise_batch, pad_last_span, truncate_last_span

log = logging.getLogger(__name__)


def _rows(lengths: list[int], pack: bool, max_length: int | None) -> list[list[int]]:
    """Example indices per row: one each, or first-fit packing into rows of `max_length`."""
    if not pack:
        return [[i] for i in range(len(lengths))]
    if max_length is None:
        raise ValueError("packing needs max_length")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_length - lengths[i])
    return rows


def _nar_runs(trainable: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """NAR baseline: every contiguous trained region (one assistant response) is one bidirectional run."""
    start = trainable & ~torch.nn.functional.pad(trainable, (1, 0))[:, :-1]
    start |= trainable & (doc != torch.nn.functional.pad(doc, (1, 0), value=-2)[:, :-1])
    return torch.where(trainable, start.long().cumsum(1), 0)


def final_span_blocks(span: torch.Tensor, modality: torch.Tensor, block_length: int) -> torch.Tensor:
    """Run ids of one example with each final span's run cut into runs of `block_length` positions.

    Blocks count from the span's first code, as decoding cuts them: the closing token and the end padding
    after it (`SPAN_PAD`) fall in the block their position gives. Other runs keep their extent; all runs
    are renumbered 1, 2, ... in order (ids stay unique within the example). Used for
    `TtTConfig.final_span_attention="block_causal"`; PPM then treats each block as a span of its own, so it
    may keep a final span's earlier blocks clean, as decoding has committed them."""
    span = span.long()
    where = torch.arange(span.numel())
    previous = torch.nn.functional.pad(span, (1, 0))[:-1]
    starts = (span > 0) & (span != previous)
    run_start = torch.cummax(torch.where(starts, where, 0), 0).values
    final = (modality == Modality.LAST_SPAN) | (modality == Modality.SPAN_PAD)
    new_run = starts | (final & ((where - run_start) % block_length == 0))
    return torch.where(span > 0, new_run.long().cumsum(0), 0).to(torch.int32)


def collate(
    examples: list,
    formatter: Formatter,
    config: TtTConfig,
    train: bool = True,
    pack: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Encode (if needed), lay out, pad and — when `train` — noise a list of examples."""
    if not examples:
        raise ValueError("collate needs at least one example")
    encoded = [ex if isinstance(ex, EncodedExample) else formatter.encode(ex, i) for i, ex in enumerate(examples)]
    clean = not train or config.mode == "ar" or banom(config, generator)
    if train and config.mode == "ttt":
        encoded = [truncate_last_span(ex, config, generator, formatter.vocab.im_start) for ex in encoded]
        if not clean:
            encoded = [pad_last_span(ex, config, formatter.vocab, generator) for ex in encoded]
    elif train and config.mode == "nar":
        encoded = [pad_last_span(ex, config, formatter.vocab, generator) for ex in encoded]
    if config.final_span_attention == "block_causal":
        encoded = [
            EncodedExample(ex.input_ids, ex.modality, final_span_blocks(ex.span, ex.modality, config.block_length),
                           ex.trainable, ex.meta)
            for ex in encoded
        ]
    if config.max_length is not None:
        long = [i for i, ex in enumerate(encoded) if len(ex) > config.max_length]
        if long:
            log.warning("truncating %d example(s) to max_length=%d (e.g. example %d)", len(long), config.max_length, long[0])
            encoded = [ex.truncated(config.max_length) for ex in encoded]
    rows = _rows([len(ex) for ex in encoded], pack, config.max_length)
    width = max(sum(len(encoded[i]) for i in row) for row in rows)
    shape = (len(rows), width)
    batch = {
        "input_ids": torch.full(shape, formatter.vocab.pad, dtype=torch.long),
        "modality": torch.full(shape, int(Modality.PAD), dtype=torch.long),
        "span_ids": torch.zeros(shape, dtype=torch.long),
        "doc_ids": torch.full(shape, -1, dtype=torch.long),
        "position_ids": torch.zeros(shape, dtype=torch.long),
        "trainable": torch.zeros(shape, dtype=torch.bool),
    }
    for r, row in enumerate(rows):
        pos, runs = 0, 0
        for i in row:
            ex, n = encoded[i], len(encoded[i])
            sl = slice(pos, pos + n)
            batch["input_ids"][r, sl] = ex.input_ids
            batch["modality"][r, sl] = ex.modality.long()
            batch["span_ids"][r, sl] = torch.where(ex.span > 0, ex.span.long() + runs, 0)
            batch["doc_ids"][r, sl] = i
            batch["position_ids"][r, sl] = torch.arange(n)
            batch["trainable"][r, sl] = ex.trainable
            runs += int(ex.span.max()) if n else 0
            pos += n
    if config.mode == "ar":
        batch["span_ids"].zero_()
    elif config.mode == "nar":
        runs = _nar_runs(batch["trainable"], batch["doc_ids"])
        inputs = torch.where(batch["modality"] == Modality.INPUT_AUDIO, batch["span_ids"], 0)
        batch["span_ids"] = torch.where(runs > 0, runs + inputs.max(), inputs)
    batch["labels"] = batch["input_ids"].clone()
    batch["masked"] = torch.zeros(shape, dtype=torch.bool)
    batch["p_mask"] = torch.ones(shape)
    batch["n_maskable"] = torch.zeros(len(encoded))
    if not clean:
        noise_batch(batch, config, formatter.vocab.mask, generator)
    return batch


def collate_for(
    model, examples: list, train: bool = True, pack: bool = False, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """The batch `model(**batch)` takes (a `TtTModel`): `collate` with the model's formatter and config, so
    with `train`, SST/BANOM/PPM and masking per `model.config`."""
    return collate(examples, model.formatter, model.config, train=train, pack=pack, generator=generator)
