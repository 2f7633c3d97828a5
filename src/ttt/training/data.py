"""Training data: load chat examples, encode each once, and serve seeded length-bucketed batches.

Sources: JSONL (one example per line), JSON (a list of examples, as the official TtT sample file) or a
directory written by `datasets.Dataset.save_to_disk` (only if `datasets` is installed). Every record
keeps where it came from (`file:line`), so a bad example is reported where a user can fix it.

Batches are drawn by `BatchSampler`, whose order is a pure function of (seed, epoch): its whole state is
two integers, which makes resuming exact and cheap.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ttt.files import read_jsonl
from ttt.format import EncodedExample
from ttt.vocab import SPECIAL_PATTERN

log = logging.getLogger(__name__)

_JSON_WS = re.compile(r"\s*")


@dataclass
class Record:
    """One raw example and the place it was read from (`file:line` or `dir[split]#row`)."""

    example: object
    where: str


def _jsonl_records(path: Path, skip_malformed: bool) -> list[Record]:
    bad: list[str] = []
    records = [Record(value, f"{path}:{n}") for n, value in read_jsonl(path, bad.append if skip_malformed else None)]
    if bad:
        log.warning("skipped %d line(s) of invalid JSON in %s; first: %s", len(bad), path, bad[0])
    return records


def _json_records(path: Path) -> Iterator[Record]:
    """Items of a top-level JSON list, each with the line it starts on (the stdlib parser gives none)."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = _JSON_WS.match(text, 0).end()
    if not text.startswith("[", pos):
        raise ValueError(f"{path}:{line_of(pos)}: expected a JSON list of examples")
    pos = _JSON_WS.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
        yield Record(item, f"{path}:{line_of(pos)}")
        pos = _JSON_WS.match(text, end).end()
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise ValueError(f"{path}:{line_of(pos)}: expected ',' or ']' after a list item")
        pos = _JSON_WS.match(text, pos + 1).end()


def _hf_records(path: Path, split: str) -> Iterator[Record]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path} is a directory; reading Hugging Face datasets needs `pip install datasets`") from None
    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"{path}: no split {split!r} (has {sorted(data)})")
        data = data[split]
    for n, row in enumerate(data):  # Arrow fills absent columns with None: drop them
        yield Record({k: v for k, v in row.items() if v is not None}, f"{path}[{split}]#{n}")


def read_records(path: str | Path, split: str = "train", skip_malformed: bool = False) -> list[Record]:
    """All raw examples of a `.jsonl` / `.json` file or a `datasets` directory (`split` picks from a
    DatasetDict). `skip_malformed` drops JSONL lines that are not JSON, with one warning; a broken
    `.json` file has no line boundaries to resynchronise on, so it always fails."""
    path = Path(path)
    if path.is_dir():
        return list(_hf_records(path, split))
    if not path.is_file():
        raise FileNotFoundError(f"no data at {path}")
    if path.suffix == ".json":
        return list(_json_records(path))
    return _jsonl_records(path, skip_malformed)


def check_build_card(data_path: str | Path, config) -> None:
    """Refuse data that `ttt data build` chunked differently from what the model will generate.

    The text chunk and span length are baked into the data but read from the model config at inference;
    a mismatch trains without error and then decodes in the wrong rhythm, so it is caught here."""
    card_file = Path(data_path).parent / "build_card.json"
    if not card_file.is_file():
        return
    card = json.loads(card_file.read_text())
    for key, ours in (("text_chunk", config.text_chunk), ("audio_chunk", config.audio_chunk),
                      ("codebook_size", config.audio_codebook_size)):
        if key in card and card[key] != ours:
            name = "audio_codebook_size" if key == "codebook_size" else key
            raise ValueError(f"{card_file} says the data was built with {key}={card[key]}, but the model has "
                             f"{name}={ours}: set ttt.{name}: {card[key]} in the config (or rebuild the data)")


def plain_texts(records: list[Record]) -> Iterator[str]:
    """The text of every message with all `<|...|>` tokens removed: what a text tokenizer should learn."""
    for rec in records:
        ex = rec.example if isinstance(rec.example, dict) else {}
        contents = [m.get("content") for m in ex.get("messages") or [] if isinstance(m, dict)]
        contents.append(ex.get("text"))
        for content in contents:
            if isinstance(content, str):
                text = SPECIAL_PATTERN.sub(" ", content).strip()
                if text:
                    yield text


def encode_records(model, records: list[Record], skip_malformed: bool = False) -> list[EncodedExample]:
    """Validate and encode every record once; errors name the record's `file:line`.

    With `skip_malformed`, bad records are dropped and counted in one warning instead.
    """
    encoded, bad = [], []
    for i, rec in enumerate(records):
        try:
            ex = model.encode(rec.example, i)
        except ValueError as err:
            message = f"{rec.where}: {err}"
            if not skip_malformed:
                raise ValueError(message) from None
            bad.append(message)
            continue
        ex.meta["where"] = rec.where
        encoded.append(ex)
    if bad:
        log.warning("skipped %d malformed example(s) of %d; first: %s", len(bad), len(records), bad[0])
    if not encoded:
        raise ValueError(f"no usable examples among {len(records)} record(s)")
    return encoded


def load_encoded(model, path: str | Path, split: str = "train", skip_malformed: bool = False) -> list[EncodedExample]:
    """`read_records` + `encode_records`."""
    return encode_records(model, read_records(path, split, skip_malformed), skip_malformed)


def split_off(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random (train, valid) split with `fraction` of the items (at least one) in valid."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {fraction}")
    n_valid = max(1, round(len(items) * fraction))
    if n_valid >= len(items):
        raise ValueError(f"cannot hold out {n_valid} of {len(items)} examples for validation")
    order = np.random.default_rng(seed).permutation(len(items))
    valid = set(order[:n_valid].tolist())
    return [x for i, x in enumerate(items) if i not in valid], [x for i, x in enumerate(items) if i in valid]


class BatchSampler:
    """Seeded, length-bucketed global batches, endless over epochs, with a resumable position.

    Each epoch permutes the examples (seed + epoch), cuts the permutation into pools of
    `bucket_pools` batches, sorts each pool by length and splits it into batches sorted by length, then
    shuffles the batch order. Batches thus hold examples of similar length (little padding) while
    every epoch still sees all examples in a fresh order. The incomplete last batch of an epoch is
    dropped so that every step has the same global batch size (which data-parallel equality needs).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, bucket_pools: int = 50) -> None:
        if batch_size <= 0 or bucket_pools <= 0:
            raise ValueError("batch_size and bucket_pools must be positive")
        if batch_size > len(lengths):
            raise ValueError(f"global batch size {batch_size} exceeds the {len(lengths)} training examples")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.bucket_pools = bucket_pools
        self.epoch = 0
        self.index = 0
        self._batches = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        order = order[: len(order) - len(order) % self.batch_size]
        pool = self.batch_size * self.bucket_pools
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.lengths) // self.batch_size

    def next_batch(self) -> list[int]:
        if self.index >= len(self._batches):
            self.epoch, self.index = self.epoch + 1, 0
            self._batches = self._epoch_batches(self.epoch)
        batch = self._batches[self.index]
        self.index += 1
        return batch

    def state_dict(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        if (state["seed"], state["batch_size"]) != (self.seed, self.batch_size):
            raise ValueError(
                f"sampler state is for seed {state['seed']}, batch size {state['batch_size']}; "
                f"this run has seed {self.seed}, batch size {self.batch_size}"
            )
        self.epoch, self.index = state["epoch"], state["index"]
        self._batches = self._epoch_batches(self.epoch)


def noise_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """The noising generator of micro-batch `micro` of optimiser step `step`.

    Deriving it from (seed, step, micro) instead of carrying one generator along makes the noise
    independent of how micro-batches are spread over processes and accumulation steps, and makes a
    resumed run draw exactly what the uninterrupted run drew.
    """
    state = np.random.SeedSequence([seed, step, micro]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def micro_batches(indices: list[int], n: int) -> list[list[int]]:
    """Split a global batch into `n` equal consecutive micro-batches."""
    if len(indices) % n:
        raise ValueError(f"global batch of {len(indices)} does not split into {n} equal micro-batches")
    size = len(indices) // n
    return [indices[i * size : (i + 1) * size] for i in range(n)]
