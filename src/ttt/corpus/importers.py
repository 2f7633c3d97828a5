"""`ttt data import`: real speech in -> codec codes -> the chat-format training files of `ttt data build`.

Sources (each given as `PATH` or `SPLIT=PATH`; the split defaults to train):

- a manifest, `.jsonl` or `.csv`, one clip per row: `audio` (path, relative to the manifest's folder) and
  `text` (its transcript), optionally `id`, `task` (asr | tts | spoken_qa), `answer` (a reply to the spoken
  question), `answer_audio` (that reply spoken), `speaker` and `split`;
- a Hugging Face `datasets` dataset with an Audio column: a folder written by `save_to_disk`, or a hub id
  (read through the local cache first, as `datasets` does offline). Its audio is written once, as stored
  (no re-encoding), under `OUT/audio/`, so that the evaluation files can point at it;
- a LibriSpeech-style folder: `*.trans.txt` files of `ID TRANSCRIPT` lines, each next to `ID.flac`
  (or any other format libsndfile reads).

Each clip becomes examples by task template: a row with a `task` gives that one; a row without gives one
per `tasks` (ASR: speech -> transcript; TTS: text -> that speech) and, when it has an answer, spoken QA
(speech -> the answer, spoken when `answer_audio` is given). The waves are encoded by any registered
codec in `workers` processes; codes are cached in `OUT/codes.jsonl` (keyed by path, size and mtime), so
an interrupted import resumes where it stopped and a re-run encodes only new or changed files. Nothing bad
stops the import: every dropped row or example is listed in `OUT/skipped.jsonl` with its `file:line` (or
`dataset[split]#row`) and the reason, and counted by reason in `OUT/build_card.json`.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

log = logging.getLogger(__name__)

TEMPLATE_TASKS = ("asr", "tts", "spoken_qa")
DEFAULT_TASKS = ("asr", "tts")
TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")
CARD_SKIP_EXAMPLES = 20
_TOO_LONG = "longer than --max-seconds"
_SPLIT_SPEC = re.compile(r"^(train|valid|test)=(.+)$")


@dataclass
class Clip:
    """One source row: a recording, what it says, and optionally a task and a (spoken) answer."""

    id: str
    where: str  # file:line, dataset[split]#row: what a user can fix
    split: str
    audio: str  # absolute path
    text: str | None = None
    task: str | None = None
    answer: str | None = None
    answer_audio: str | None = None
    speaker: str | None = None


@dataclass
class Skip:
    """A row or example left out: where (for the user to fix), a short kind (counted in the card), the reason."""

    where: str
    kind: str
    reason: str


@dataclass
class ImportOptions:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    text_chunk: int = 13
    audio_chunk: int = 26
    vocab_size: int = 1024
    tokenizer: str | None = None
    workers: int = 1
    max_seconds: float | None = None
    lowercase: bool = False
    tts_speakers: tuple[str, ...] = ()
    hf_split: str = "train"
    audio_column: str = "audio"
    text_column: str | None = None
    answer_column: str | None = None
    speaker_column: str | None = None


# ---------------------------------------------------------------- sources


def parse_source(spec: str) -> tuple[str, str]:
    """`SPLIT=PATH` or `PATH` (train) -> (split, path)."""
    match = _SPLIT_SPEC.match(spec)
    return (match.group(1), match.group(2)) if match else ("train", spec)


def _clean(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _row_clip(row: dict, where: str, base: Path, split: str, default_id: str) -> Clip | Skip:
    """A manifest row (JSONL object or CSV row) as a clip, or the reason it cannot be one."""
    if not isinstance(row, dict):
        return Skip(where, "not a JSON object", f"expected a JSON object, got {type(row).__name__}")
    audio = _clean(row.get("audio"))
    if audio is None:
        return Skip(where, "no audio path", "no 'audio' path")
    task = _clean(row.get("task"))
    if task is not None and task not in TEMPLATE_TASKS:
        return Skip(where, "unknown task", f"unknown task {task!r} (use one of {', '.join(TEMPLATE_TASKS)})")
    path = (base / audio).resolve()
    if not path.is_file():
        return Skip(where, "audio file not found", f"audio file not found: {path}")
    answer_audio = _clean(row.get("answer_audio"))
    if answer_audio is not None:
        answer_audio = str((base / answer_audio).resolve())
        if not Path(answer_audio).is_file():
            return Skip(where, "answer audio file not found", f"answer audio file not found: {answer_audio}")
    row_split = _clean(row.get("split")) or split
    if row_split not in ("train", "valid", "test"):
        return Skip(where, "unknown split", f"unknown split {row_split!r} (use train, valid or test)")
    return Clip(id=_clean(row.get("id")) or default_id, where=where, split=row_split, audio=str(path),
                text=_clean(row.get("text")), task=task, answer=_clean(row.get("answer")),
                answer_audio=answer_audio, speaker=_clean(row.get("speaker")))


def read_manifest_source(path: Path, split: str) -> Iterator[Clip | Skip]:
    """Clips of a `.jsonl` or `.csv` manifest; a malformed line is a `Skip` naming `file:line`."""
    base = path.parent
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "audio" not in reader.fieldnames:
                raise ValueError(f"{path}:1: CSV header must name an 'audio' column (has {reader.fieldnames})")
            for n, row in enumerate(reader, 1):
                where = f"{path}:{reader.line_num}"
                if None in row:
                    yield Skip(where, "more CSV fields than the header", f"{len(row[None])} more field(s) than the header has")
                    continue
                yield _row_clip(row, where, base, split, f"{path.stem}-{n}")
        return
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield Skip(where, "invalid JSON", f"invalid JSON: {err.msg} (column {err.colno})")
                continue
            yield _row_clip(row, where, base, split, f"{path.stem}-{n}")


def read_librispeech(folder: Path, split: str) -> Iterator[Clip | Skip]:
    """Clips of a LibriSpeech-style tree: every `*.trans.txt` (`ID TEXT` lines) next to its `ID.<audio>`."""
    from ttt.audio.io import _supported_suffixes

    transcripts = sorted(folder.rglob("*.trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"{folder}: no *.trans.txt transcript files (not a LibriSpeech-style folder)")
    suffixes = _supported_suffixes()
    for trans in transcripts:
        audio_of = {p.stem: p for p in trans.parent.iterdir() if p.suffix.lower() in suffixes}
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{trans}:{n}"
            utt, _, text = line.strip().partition(" ")
            if not text.strip():
                yield Skip(where, "no transcript", f"no transcript after the id {utt!r}")
                continue
            if utt not in audio_of:
                yield Skip(where, "no audio file for a transcript", f"no audio file {utt}.* next to {trans.name}")
                continue
            speaker = utt.split("-")[0] if "-" in utt else None
            yield Clip(id=utt, where=where, split=split, audio=str(audio_of[utt].resolve()), text=text.strip(),
                       speaker=speaker)


_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"))


def _audio_suffix(data: bytes, name: str | None) -> str:
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return Path(name).suffix if name and Path(name).suffix else ".wav"


def _write_once(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data):
        return  # resumed import: written before
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def load_hf_dataset(spec: str, split: str):
    """A `datasets.Dataset`: `load_from_disk` for a folder, else `load_dataset(hub id)` (local cache first)."""
    try:
        import datasets
    except ImportError:
        raise ValueError(f"reading {spec} needs the `datasets` package: pip install 'text-to-talk[datasets]'") from None
    if Path(spec).is_dir():
        data = datasets.load_from_disk(spec)
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ValueError(f"{spec}: no split {split!r} (has {sorted(data)}); pick one with --hf-split")
            data = data[split]
        return data
    try:
        return datasets.load_dataset(spec, split=split)
    except Exception as err:  # noqa: BLE001 - offline, unknown id, bad split: one line for the user
        raise FileNotFoundError(f"{spec}: no such manifest or folder, and `datasets` could not load it as a hub "
                                f"dataset ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def read_hf_source(spec: str, split: str, opts: ImportOptions, audio_dir: Path) -> Iterator[Clip | Skip]:
    """Clips of a `datasets` dataset: its audio written once, as stored, under `audio_dir`."""
    import datasets
    import numpy as np

    from ttt.audio.io import save_audio

    data = load_hf_dataset(spec, opts.hf_split)
    columns = data.column_names
    if opts.audio_column not in columns:
        raise ValueError(f"{spec}: no audio column {opts.audio_column!r} (has {columns}); set --audio-column")
    text_column = opts.text_column or next((c for c in TEXT_COLUMNS if c in columns), None)
    if text_column is None or text_column not in columns:
        raise ValueError(f"{spec}: no text column (looked for {opts.text_column or TEXT_COLUMNS}, has {columns}); "
                         "set --text-column")
    speaker_column = opts.speaker_column or next((c for c in SPEAKER_COLUMNS if c in columns), None)
    if isinstance(data.features.get(opts.audio_column), datasets.Audio):
        data = data.cast_column(opts.audio_column, datasets.Audio(decode=False))  # raw bytes: no torchcodec
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.strip("/"))[-60:]
    folder = audio_dir / name / opts.hf_split
    folder.mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(data):
        where = f"{spec}[{opts.hf_split}]#{n}"
        value = row[opts.audio_column]
        stem = str(row.get("id") or n)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
        try:
            if isinstance(value, dict) and value.get("bytes"):
                path = folder / (safe + _audio_suffix(value["bytes"], value.get("path")))
                _write_once(path, value["bytes"])
            elif isinstance(value, dict) and value.get("array") is not None:
                path = folder / f"{safe}.flac"
                if not path.is_file():
                    save_audio(path, np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"]))
            elif isinstance(value, dict) and value.get("path") and Path(value["path"]).is_file():
                path = Path(value["path"])
            else:
                yield Skip(where, "no audio in the row", f"column {opts.audio_column!r} holds no audio bytes, array or existing path")
                continue
        except ValueError as err:
            yield Skip(where, "unusable audio", str(err))
            continue
        answer = _clean(row.get(opts.answer_column)) if opts.answer_column else None
        speaker = _clean(row.get(speaker_column)) if speaker_column else None
        yield Clip(id=f"{name}-{stem}", where=where, split=split, audio=str(path.resolve()),
                   text=_clean(row.get(text_column)), answer=answer, speaker=speaker)


def read_source(spec: str, opts: ImportOptions, out_dir: Path) -> Iterator[Clip | Skip]:
    """Dispatch on what `spec` (`[SPLIT=]PATH`) is: manifest file, LibriSpeech folder, `datasets` folder/id."""
    split, where = parse_source(spec)
    path = Path(where)
    if path.is_file():
        if path.suffix.lower() not in (".jsonl", ".csv"):
            raise ValueError(f"{path}: a manifest must be .jsonl or .csv")
        return read_manifest_source(path, split)
    if path.is_dir():
        if any(path.rglob("*.trans.txt")):
            return read_librispeech(path, split)
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return read_hf_source(where, split, opts, out_dir / "audio")
        raise ValueError(f"{path}: neither a LibriSpeech-style folder (*.trans.txt) nor a `datasets` save_to_disk folder")
    if "/" in where and not where.startswith((".", "/")):
        return read_hf_source(where, split, opts, out_dir / "audio")
    raise FileNotFoundError(f"{where}: no such manifest, folder or dataset id")


# ---------------------------------------------------------------- encoding with a resumable cache


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class CodesCache:
    """`OUT/codes.jsonl`: one `{"audio", "stamp", "codes"}` line per encoded file, appended as encoded.

    A file counts as cached only while its (size, mtime) stamp is unchanged. The codec that made the cache
    is recorded in `OUT/codes_codec.json`; another codec's cache is refused rather than mixed in. A last
    line cut short by a killed import is dropped on open, so appending resumes cleanly."""

    def __init__(self, out_dir: Path, codec_info: dict):
        self.path = out_dir / "codes.jsonl"
        meta = out_dir / "codes_codec.json"
        if meta.is_file() and self.path.is_file():
            theirs = json.loads(meta.read_text())
            if theirs != codec_info:
                raise ValueError(f"{self.path} holds codes of codec {theirs}, not of this codec {codec_info}: "
                                 "import into a new --out folder (or delete the cache)")
        meta.write_text(json.dumps(codec_info) + "\n")
        self.codes: dict[str, tuple[list[int], list[int]]] = {}
        if self.path.is_file():
            raw = self.path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                raw = raw[: raw.rfind(b"\n") + 1]
                self.path.write_bytes(raw)
                log.warning("%s: dropped a last line cut short by an interrupted import", self.path)
            for line in raw.decode("utf-8").splitlines():
                entry = json.loads(line)
                self.codes[entry["audio"]] = (entry["stamp"], entry["codes"])

    def get(self, audio: str) -> list[int] | None:
        entry = self.codes.get(audio)
        return entry[1] if entry and entry[0] == _stamp(audio) else None

    def put(self, out, audio: str, codes: list[int]) -> None:
        stamp = _stamp(audio)
        self.codes[audio] = (stamp, codes)
        out.write(json.dumps({"audio": audio, "stamp": stamp, "codes": codes}) + "\n")
        out.flush()


_WORKER_CODEC = None


def _init_worker(codec_spec: str | None) -> None:
    import torch

    from ttt.audio.codec import open_codec

    global _WORKER_CODEC
    torch.set_num_threads(1)
    _WORKER_CODEC = open_codec(codec_spec)


def _encode_one(audio: str, max_seconds: float | None, codec=None) -> tuple[str, list[int] | None, str | None]:
    """(audio, codes, None) or (audio, None, reason): never raises for bad audio."""
    import soundfile as sf

    from ttt.audio.io import load_audio

    codec = codec or _WORKER_CODEC
    try:
        if max_seconds is not None:
            seconds = sf.info(audio).duration
            if seconds > max_seconds:
                return audio, None, f"audio is {seconds:.1f} s, {_TOO_LONG} {max_seconds:g}"
        codes = codec.encode(*load_audio(audio))
    except (ValueError, FileNotFoundError, RuntimeError, sf.LibsndfileError) as err:
        return audio, None, str(err)
    if not codes:
        return audio, None, f"{audio}: the codec gave no codes (too short)"
    return audio, codes, None


def encode_all(paths: list[str], codec, codec_spec: str | None, cache: CodesCache, workers: int,
               max_seconds: float | None) -> tuple[dict[str, list[int]], dict[str, str], int]:
    """Codes of every path (cached ones read, the rest encoded in `workers` processes); returns
    (codes, failures {path: reason}, number encoded now)."""
    codes, failed, todo = {}, {}, []
    for path in dict.fromkeys(paths):
        cached = cache.get(path)
        if cached is not None and (max_seconds is None or len(cached) / codec.frame_rate <= max_seconds):
            codes[path] = cached
        elif cached is not None:
            failed[path] = f"audio is {len(cached) / codec.frame_rate:.1f} s, {_TOO_LONG} {max_seconds:g}"
        else:
            todo.append(path)
    with open(cache.path, "a", encoding="utf-8") as out, tqdm(total=len(todo), desc="encode audio", unit="clip",
                                                              disable=not todo) as bar:
        def record(result):
            audio, got, reason = result
            if got is None:
                failed[audio] = reason
            else:
                codes[audio] = got
                cache.put(out, audio, got)
            bar.update()

        if workers <= 1 or len(todo) <= 1:
            for path in todo:
                record(_encode_one(path, max_seconds, codec))
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # torch + fork can deadlock in OpenMP
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                     initargs=(codec_spec,)) as pool:
                for future in as_completed([pool.submit(_encode_one, p, max_seconds) for p in todo]):
                    record(future.result())
    return codes, failed, len(todo)


# ---------------------------------------------------------------- examples


def _items_of(clip: Clip, opts: ImportOptions) -> tuple[list[dict], list[Skip]]:
    """The corpus items (`ttt.corpus.build` schema) one clip yields by task template, and what it cannot yield."""
    norm = (lambda s: s.lower()) if opts.lowercase else (lambda s: s)
    text = norm(clip.text) if clip.text else None
    answer = norm(clip.answer) if clip.answer else None
    tasks = [clip.task] if clip.task else list(opts.tasks) + (["spoken_qa"] if answer else [])
    items, skips = [], []
    for task in dict.fromkeys(tasks):
        if task in ("asr", "tts") and not text:
            skips.append(Skip(clip.where, f"{task}: no transcript", f"{task}: no transcript ('text')"))
        elif task == "spoken_qa" and not answer:
            if clip.task:  # asked for explicitly
                skips.append(Skip(clip.where, "spoken_qa: no answer", "spoken_qa: no 'answer'"))
        elif task == "tts" and opts.tts_speakers and clip.speaker not in opts.tts_speakers:
            skips.append(Skip(clip.where, "tts: speaker not a --tts-speaker", f"tts: speaker {clip.speaker!r} not among --tts-speaker"))
        elif task == "asr":
            items.append({"id": f"{clip.id}-asr", "task": "asr", "question": None, "question_audio": clip.audio,
                          "answer": text})
        elif task == "tts":
            items.append({"id": f"{clip.id}-tts", "task": "tts", "question": text, "answer": text,
                          "answer_audio": clip.audio})
        elif task == "spoken_qa":
            items.append({"id": f"{clip.id}-qa", "task": "spoken_qa", "question": text, "question_audio": clip.audio,
                          "answer": answer, "answer_audio": clip.answer_audio})
    for item in items:
        item["speaker"], item["where"], item["split"] = clip.speaker, clip.where, clip.split
    return items, skips


def import_data(sources: list[str], out_dir: str | Path, codec_spec: str | None = None,
                opts: ImportOptions | None = None) -> dict:
    """Read every source, encode its audio, write `{split}.jsonl`, `eval_{split}.jsonl`, `tokenizer/`,
    `codes.jsonl`, `skipped.jsonl` and `build_card.json` into `out_dir`; returns the card."""
    from ttt.audio.codec import open_codec
    from ttt.corpus.build import _write_jsonl, load_tokenizer, to_eval_item, to_example
    from ttt.format import SYSTEM
    from ttt.vocab import train_bpe_tokenizer
    from ttt.vocab import add_ttt_tokens

    opts = opts or ImportOptions()
    if not sources:
        raise ValueError("name at least one source (a manifest, a LibriSpeech folder or a datasets folder/id)")
    bad_tasks = set(opts.tasks) - {"asr", "tts"}
    if bad_tasks or not opts.tasks:
        raise ValueError(f"--tasks takes asr and/or tts (spoken_qa comes from rows with an answer), got {list(opts.tasks)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codec = open_codec(codec_spec)
    codec_info = {"type": codec.codec_type, "frame_rate": codec.frame_rate, "codebook_size": codec.codebook_size,
                  "source": codec_spec or "default"}
    cache = CodesCache(out_dir, codec_info)

    clips, skips, seen = [], [], {}
    for spec in sources:
        for entry in read_source(spec, opts, out_dir):
            if isinstance(entry, Skip):
                skips.append(entry)
            elif entry.id in seen:
                skips.append(Skip(entry.where, "duplicate id", f"duplicate id {entry.id!r} (first at {seen[entry.id]})"))
            else:
                seen[entry.id] = entry.where
                clips.append(entry)
    items, item_skips = [], []
    for clip in clips:
        got, lost = _items_of(clip, opts)
        items += got
        item_skips += lost
    waves = [it[k] for it in items for k in ("question_audio", "answer_audio") if it.get(k)]
    codes, failed, encoded_now = encode_all(waves, codec, codec_spec, cache, opts.workers, opts.max_seconds)
    usable = []
    for item in items:
        lost = [failed[it] for it in (item.get("question_audio"), item.get("answer_audio")) if it in failed]
        if lost:
            item_skips.append(Skip(item["where"], "too long" if _TOO_LONG in lost[0] else "unusable audio",
                                   f"{item['task']}: {lost[0]}"))
        else:
            usable.append(item)
    skips += item_skips
    by_split = defaultdict(list)
    for item in usable:
        by_split[item["split"]].append(item)
    if not by_split.get("train"):
        _write_skips(out_dir, skips)
        raise ValueError(f"no usable train examples from {sources} ({len(skips)} skipped; see {out_dir}/skipped.jsonl)")

    tokenizer, source = opts.tokenizer, "bpe trained on the imported text"
    if tokenizer is not None:
        source, tokenizer = str(tokenizer), load_tokenizer(tokenizer)
    else:
        texts = [t for it in by_split["train"] for t in (it.get("question"), it["answer"]) if t] + list(SYSTEM.values())
        tokenizer = train_bpe_tokenizer(texts, vocab_size=opts.vocab_size)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    add_ttt_tokens(tokenizer, codec.codebook_size)

    root, counts = Path("/"), {}
    for split in ("train", "valid", "test"):
        if split not in by_split:
            continue
        examples, evals = [], []
        for item in by_split[split]:
            try:
                example = to_example(item, codes, tokenizer, opts.text_chunk, opts.audio_chunk)
            except ValueError as err:
                skips.append(Skip(item["where"], "invalid example", f"{item['task']}: {err}"))
                continue
            example["speaker"] = item["speaker"]
            examples.append(example)
            evals.append({**to_eval_item(item, root, out_dir), "speaker": item["speaker"]})
        _write_jsonl(out_dir / f"{split}.jsonl", examples)
        _write_jsonl(out_dir / f"eval_{split}.jsonl", evals)
        counts[split] = dict(Counter(e["task"] for e in examples))
    _write_skips(out_dir, skips)
    card = {"sources": sources, "codec": codec_info, "codec_frame_rate": codec.frame_rate,
            "codebook_size": codec.codebook_size, "text_chunk": opts.text_chunk, "audio_chunk": opts.audio_chunk,
            "tokenizer": source, "tokenizer_size": len(tokenizer),
            "examples": {split: sum(c.values()) for split, c in counts.items()}, "tasks": counts,
            "clips": {"read": len(clips), "encoded_now": encoded_now, "from_cache": len(set(waves)) - encoded_now},
            "audio_hours": round(sum(len(codes[w]) for w in set(waves) if w in codes) / codec.frame_rate / 3600, 4),
            "skipped": dict(Counter(s.kind for s in skips).most_common()),
            "skipped_first": [f"{s.where}: {s.reason}" for s in skips[:CARD_SKIP_EXAMPLES]]}
    (out_dir / "build_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _write_skips(out_dir: Path, skips: list[Skip]) -> None:
    with open(out_dir / "skipped.jsonl", "w", encoding="utf-8") as f:
        for s in skips:
            f.write(json.dumps({"where": s.where, "kind": s.kind, "reason": s.reason}) + "\n")
