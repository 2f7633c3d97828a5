"""Corpus manifests + audio codec -> a text tokenizer, chat-format training JSONL and evaluation JSONL.

The synthetic corpus (`ttt data synth`) stores waves and texts; this step turns them into what the model
trains on: every wave encoded once by the codec (cached in `codes.jsonl`, so a rebuild only encodes new
waves), a byte-level BPE tokenizer trained on the corpus text (saved next to the data, because the
13-token text chunks of the interleaved format are counted in *its* tokens), and per split:

- `{split}.jsonl`: `{"messages": [...], "task", "id"}` in the official TtT chat format;
- `eval_{split}.jsonl`: `{"task", "audio", "text", "answer", "id"}` items for `ttt eval` (audio paths are
  relative to that file).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tqdm import tqdm

from ttt.format import input_audio, interleave

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SYSTEM = {
    "asr": "Transcribe the speech.",
    "tts": "Read the text aloud.",
    "spoken_qa": "Answer the spoken question out loud.",
    "text_chat": "Answer the question.",
}
EVAL_TASK = {"asr": "asr", "tts": "tts", "spoken_qa": "spoken_qa", "text_chat": "text_qa"}


def read_manifest(path: Path) -> list[dict]:
    items = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: malformed JSON ({err.msg})") from None
    return items


def encode_waves(corpus: Path, paths: list[str], codec, cache: Path) -> dict[str, list[int]]:
    """Codes for every wave path (relative to `corpus`), encoding only those not already in `cache`."""
    codes: dict[str, list[int]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            entry = json.loads(line)
            codes[entry["audio"]] = entry["codes"]
    todo = sorted(set(paths) - set(codes))
    with open(cache, "a") as out:
        for rel in tqdm(todo, desc="encode audio", unit="wav", disable=not todo):
            codes[rel] = codec.encode_file(corpus / rel)
            out.write(json.dumps({"audio": rel, "codes": codes[rel]}) + "\n")
    return codes


def to_example(item: dict, codes: dict[str, list[int]], tokenizer, text_chunk: int, audio_chunk: int) -> dict:
    """One corpus item as a chat example; spoken answers are interleaved text + target-voice codes."""
    task = item["task"]
    if task not in SYSTEM:
        raise ValueError(f"item {item.get('id')}: unknown task {task!r}")
    user = input_audio(codes[item["question_audio"]]) if item.get("question_audio") else item["question"]
    answer = item["answer"]
    if item.get("answer_audio"):
        answer = interleave(answer, codes[item["answer_audio"]], tokenizer, text_chunk, audio_chunk)
    messages = [
        {"role": "system", "content": SYSTEM[task]},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, "task": task, "id": item["id"]}


def to_eval_item(item: dict, corpus: Path, out_dir: Path) -> dict:
    """The evaluation view of an item: input audio for ASR/QA, the target-voice reference for TTS."""
    audio = item.get("question_audio") or item.get("answer_audio")
    entry = {"task": EVAL_TASK[item["task"]], "id": item["id"], "text": item["question"] or item["answer"]}
    if item["task"] != "text_chat" and audio:
        entry["audio"] = os.path.relpath(corpus / audio, out_dir)
    if item["task"] in ("spoken_qa", "text_chat"):
        entry["answer"] = item["answer"]
    return entry


def build(
    corpus: Path, out_dir: Path, codec, text_chunk: int = 13, audio_chunk: int = 26, vocab_size: int = 1024
) -> dict:
    """Write tokenizer, training and evaluation files for every split; returns counts per split."""
    from ttt.backbones import train_bpe_tokenizer
    from ttt.vocab import add_ttt_tokens

    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {s: read_manifest(corpus / f"{s}.jsonl") for s in SPLITS if (corpus / f"{s}.jsonl").exists()}
    if "train" not in manifests:
        raise FileNotFoundError(f"{corpus}/train.jsonl not found (run `ttt data synth` first)")
    waves = [it[k] for items in manifests.values() for it in items for k in ("question_audio", "answer_audio") if it.get(k)]
    codes = encode_waves(corpus, waves, codec, out_dir / "codes.jsonl")
    texts = [t for it in manifests["train"] for t in (it.get("question"), it["answer"]) if t] + list(SYSTEM.values())
    tokenizer = train_bpe_tokenizer(texts, vocab_size=vocab_size)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    add_ttt_tokens(tokenizer, codec.codebook_size)
    counts = {}
    for split, items in manifests.items():
        examples = [to_example(it, codes, tokenizer, text_chunk, audio_chunk) for it in tqdm(items, desc=split, unit="ex")]
        _write_jsonl(out_dir / f"{split}.jsonl", examples)
        _write_jsonl(out_dir / f"eval_{split}.jsonl", [to_eval_item(it, corpus, out_dir) for it in items])
        counts[split] = len(examples)
    card = {"corpus": str(corpus), "codec_frame_rate": codec.frame_rate, "codebook_size": codec.codebook_size,
            "text_chunk": text_chunk, "audio_chunk": audio_chunk, "tokenizer_size": len(tokenizer), "examples": counts}
    (out_dir / "build_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)
