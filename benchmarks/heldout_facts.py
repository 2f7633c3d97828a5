"""Held-out facts: split a model's QA answers into facts training states and facts it must infer.

    python -m benchmarks.heldout_facts --corpus data/corpus --split valid \\
        select --data data/tokens/valid_notts.jsonl --out data/tokens/valid_held.jsonl
    ttt eval --model DIR --data data/tokens/valid_held.jsonl --out runs/eval/held
    python -m benchmarks.heldout_facts --corpus data/corpus --split valid report runs/eval/held/items.jsonl

The corpus holds out a few arithmetic combinations and capitals per split (`heldout_keys` in its card):
no training example states them, so a question about one can only be answered by inferring it. Overall
QA accuracy mixes these with the facts training states, which a model answers almost always; the
held-out share then decides the score, and it is all-or-nothing per fact. `select` writes the eval items
(spoken and text QA) that ask a held-out fact of the split, so a valid run can measure that part alone
with enough items; `report` reads a `ttt eval --out` folder's `items.jsonl` and prints accuracy on seen
and held-out facts per task, how many held-out facts the model knows (at least half their questions
right), and with `--per-fact` each fact's count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from ttt.training.data import read_records

QA_TASKS = ("spoken_qa", "text_qa", "text_chat")
AUDIO_FIELDS = ("audio", "answer_audio")


def heldout_keys(corpus: Path, split: str) -> set[str]:
    """The keys the corpus card holds out for `split`; a clear error if the card or split is missing."""
    card_path = corpus / "corpus_card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path}: no corpus card (written by `ttt data synth`)")
    keys = json.loads(card_path.read_text()).get("heldout_keys", {})
    if split not in keys:
        raise ValueError(f"{card_path}: no held-out keys for split {split!r} (has: {', '.join(keys)})")
    return set(keys[split])


@lru_cache(maxsize=1)
def _keys_by_answer() -> dict[str, str]:
    from ttt.corpus.world import build_world

    return {item.answer: item.key for item in build_world()}


def fact_key(answer: str) -> str | None:
    """The world key whose answer sentence this is, or None for sentences outside the world."""
    return _keys_by_answer().get(answer)


def select(data: Path, out: Path, held: set[str]) -> int:
    """Write the QA items of `data` that ask a held-out fact (audio paths rebased to `out`'s folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    for row in (r.example for r in read_records(data)):
        if row.get("task") in QA_TASKS and fact_key(row.get("answer", "")) in held:
            for field in AUDIO_FIELDS:
                if row.get(field) and not os.path.isabs(row[field]):
                    row[field] = os.path.relpath((data.parent / row[field]).resolve(), out.parent.resolve())
            kept.append(row)
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return len(kept)


def per_fact(items: Path) -> dict[tuple[str, str], list[bool]]:
    """(task, key) → correctness of each answer, read from `ttt eval` items and their source lines."""
    sources: dict[str, dict[str, dict]] = {}
    result: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for item in (r.example for r in read_records(items)):
        if item.get("task") not in QA_TASKS:
            continue
        path, _, line = item["source"].rpartition(":")
        if path not in sources:
            sources[path] = {r.where.rpartition(":")[2]: r.example for r in read_records(path)}
        key = fact_key(sources[path][line].get("answer", ""))
        if key is None:
            continue
        metrics = item["metrics"]
        result[(item["task"], key)].append(bool(metrics.get("text_accuracy", metrics.get("accuracy"))))
    return result


def report(items: Path, held: set[str], show_facts: bool) -> str:
    """Readable summary: per task, seen vs held-out accuracy and held-out facts known."""
    facts = per_fact(items)
    lines = []
    for task in sorted({t for t, _ in facts}):
        for label, inside in (("seen", False), ("held-out", True)):
            group = {k: v for (t, k), v in facts.items() if t == task and (k in held) == inside}
            answers = [ok for v in group.values() for ok in v]
            if not answers:
                continue
            known = sum(2 * sum(v) >= len(v) for v in group.values())
            lines.append(f"{task:9s} {label:8s} accuracy {sum(answers) / len(answers):.3f} over "
                         f"{len(answers)} answers; {known} of {len(group)} facts known")
            if show_facts and inside:
                lines.append("    " + " ".join(f"{k}={sum(v)}/{len(v)}" for k, v in sorted(group.items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heldout_facts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, type=Path, help="corpus folder (its corpus_card.json)")
    parser.add_argument("--split", default="valid", choices=("valid", "test"), help="default: valid")
    sub = parser.add_subparsers(dest="command", required=True)
    sel = sub.add_parser("select", help="write the QA items that ask a held-out fact")
    sel.add_argument("--data", required=True, type=Path, help="eval JSONL (`ttt eval` format)")
    sel.add_argument("--out", required=True, type=Path, help="JSONL to write")
    rep = sub.add_parser("report", help="seen vs held-out accuracy of a `ttt eval` run")
    rep.add_argument("items", type=Path, help="items.jsonl of a `ttt eval --out` folder")
    rep.add_argument("--per-fact", action="store_true", help="list every held-out fact's count")
    args = parser.parse_args(argv)
    try:
        held = heldout_keys(args.corpus, args.split)
        if args.command == "select":
            print(f"{select(args.data, args.out, held)} items on held-out facts -> {args.out}")
        else:
            print(report(args.items, held, args.per_fact))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
