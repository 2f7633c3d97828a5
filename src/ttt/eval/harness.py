"""The evaluation harness behind `ttt eval`: read eval JSONL, run each item's task, score, aggregate.

Items are `{"task", "id", "text", "audio"?, "answer"?, "answer_audio"?}` lines as `ttt.corpus.build` writes
them (audio paths relative to the file; `answer_audio`, spoken QA only, is the reference voice saying the
correct answer, so spoken answers get the same reference WER that TTS has). A bad line must not cost a
long run, so `read_items` turns every problem (bad JSON, missing field, unknown task, missing or
unreadable audio) into a `Skipped` entry naming file and line, and the run goes on without it.

Per item a task returns metric values of two shapes (see docs/evaluation.md):
- a number or bool, averaged over items (accuracy, MCD, length ratio, DNSMOS, ...);
- a `(numerator, denominator)` pair, aggregated as Σnum / Σden (corpus WER = all edits / all reference
  words; real-time factor = all wall time / all audio seconds), so long items weigh what they should.
Both are bootstrapped over items for a 95% BCa confidence interval (`ttt.eval.metrics.bootstrap_ci`).
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttt.audio.io import load_audio, resample, save_audio
from ttt.eval.metrics import bootstrap_ci, cer, mcd_dtw, normalize, wer

log = logging.getLogger(__name__)

# Fields each task needs; tts "audio" (the reference rendering) is optional: without it only the
# reference-free metrics are computed.
REQUIRED = {"asr": ("text", "audio"), "tts": ("text",), "spoken_qa": ("audio", "answer"),
            "text_qa": ("text", "answer")}
TASKS = tuple(REQUIRED)
BATCHED_TASKS = ("asr", "text_qa")  # text out: `ttt eval --batch-size` decodes these in batches
SPEECH_TASKS = ("tts", "spoken_qa")  # speech out: scored by the Whisper scorer (and DNSMOS)
# Words that introduce the fact in an answer sentence ("seven plus four IS eleven", "a cow SAYS moo").
COPULAS = frozenset({"is", "are", "equals", "says"})
STOP_TOLERANCE = 0.2


@dataclass
class EvalItem:
    task: str
    id: str
    text: str
    file: str
    line: int
    audio: Path | None = None
    answer: str | None = None
    answer_audio: Path | None = None

    @property
    def source(self) -> str:
        """"file:line", for messages about this item."""
        return f"{self.file}:{self.line}"


@dataclass
class Skipped:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def _parse(raw: bytes, path: Path, number: int) -> EvalItem | str:
    """The item on line `number` of `path`, or the reason it cannot be evaluated."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except json.JSONDecodeError as err:
        return f"malformed JSON ({err.msg})"
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    task = row.get("task")
    if task not in REQUIRED:
        return f"unknown task {task!r} (expected one of {', '.join(TASKS)})"
    for key in REQUIRED[task]:
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"{task} item needs a non-empty string {key!r}"
    if row.get("text") is not None and not isinstance(row["text"], str):
        return "'text' must be a string"
    if "text" in REQUIRED[task] and not normalize(row["text"]):
        return "'text' is empty after normalisation (nothing to score against)"
    if "answer" in REQUIRED[task] and not answer_key(row["answer"]):
        return f"answer {row['answer']!r} states no fact (nothing after its last copula)"
    waves: dict[str, Path | None] = {"audio": None, "answer_audio": None}
    for key in waves:
        if row.get(key) is None:
            continue
        if key == "answer_audio" and task != "spoken_qa":
            return "'answer_audio' belongs to spoken_qa items only"
        if not isinstance(row[key], str):
            return f"{key!r} must be a path string"
        waves[key] = path.parent / row[key]
        try:
            load_audio(waves[key])
        except (ValueError, FileNotFoundError) as err:
            return f"{key}: {err}"
    item_id = str(row.get("id") or f"{path}:{number}")
    return EvalItem(task, item_id, row.get("text") or "", str(path), number, waves["audio"], row.get("answer"),
                    waves["answer_audio"])


def read_items(path: str | Path) -> tuple[list[EvalItem], list[Skipped]]:
    """Every valid item of an eval JSONL file, and every line skipped with its reason (also logged)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give an eval JSONL file (e.g. data/built/eval_test.jsonl)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such eval file")
    items, skipped = [], []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parsed = _parse(line, path, number)
            if isinstance(parsed, str):
                skipped.append(Skipped(str(path), number, parsed))
                log.warning("skipping %s", skipped[-1])
            else:
                items.append(parsed)
    if not items:
        why = f"all {len(skipped)} lines are malformed (first: {skipped[0].reason})" if skipped else "the file is empty"
        raise ValueError(f"{path}: no evaluation items: {why}")
    return items, skipped


# ---- per-item metric definitions -------------------------------------------------------------------

def select(items: list[EvalItem], limit: int | None = None, per_task: int | None = None) -> list[EvalItem]:
    """The first `per_task` items of each task (file order kept), then the first `limit` of those.

    Eval files list tasks in blocks, so a plain `limit` would test one task only; `per_task` gives a
    small run that still covers every task the file holds."""
    for name, value in (("limit", limit), ("per_task", per_task)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if per_task is not None:
        seen: dict[str, int] = {}
        kept = []
        for item in items:
            seen[item.task] = seen.get(item.task, 0) + 1
            if seen[item.task] <= per_task:
                kept.append(item)
        items = kept
    return items[:limit]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) after `normalize`: one item's share of a corpus WER."""
    words = len(normalize(ref).split())
    return round(wer(ref, hyp) * words), words


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(character edits, reference characters, spaces included) after `normalize`."""
    chars = len(normalize(ref))
    return round(cer(ref, hyp) * chars), chars


def answer_key(text: str) -> list[str]:
    """The fact an answer states: the normalised words after its last copula ("is", "are", "equals",
    "says"), or all its words when it has none. "seven plus four is eleven" -> ["eleven"]."""
    words = normalize(text).split()
    cut = max((i for i, w in enumerate(words) if w in COPULAS), default=-1)
    return words[cut + 1:]


def text_answer_correct(hyp: str, answer: str) -> bool:
    """Exact match of the facts: `answer_key(hyp) == answer_key(answer)`, so a restated question
    ("eleven minus zero is ten" for "eleven minus zero is eleven") does not count."""
    key = answer_key(answer)
    return bool(key) and answer_key(hyp) == key


def audio_answer_correct(transcript: str, answer: str) -> bool:
    """The answer's key occurs as whole words in the transcript's key: tolerant of what an ASR adds
    around it ("eleven. thank you."), still blind to numbers in the restated question."""
    key, heard = answer_key(answer), answer_key(transcript)
    return bool(key) and any(heard[i:i + len(key)] == key for i in range(len(heard) - len(key) + 1))


def length_ratio(generated_s: float, reference_s: float) -> float:
    """Stop accuracy per item: generated length / reference length (1.0 = stopped on time)."""
    if reference_s <= 0:
        raise ValueError(f"reference length must be positive, got {reference_s}")
    return generated_s / reference_s


def stopped_on_time(ratio: float, tolerance: float = STOP_TOLERANCE) -> bool:
    """Within ±`tolerance` of the reference length (the epsilon keeps 1.2 inside despite rounding)."""
    return abs(ratio - 1.0) <= tolerance + 1e-12


# ---- aggregation -----------------------------------------------------------------------------------

def summarize_metric(values: list, seed: int = 0) -> dict | None:
    """{"value", "ci": [low, high], "n"} over items: the mean of numbers, or Σnum/Σden of pairs; None
    when no item has a value (or all denominators are zero). A bootstrap resample whose denominators
    are all zero (only items without audio drawn) counts as the full-sample ratio."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if isinstance(values[0], (tuple, list)):
        num = np.array([v[0] for v in values], dtype=np.float64)
        den = np.array([v[1] for v in values], dtype=np.float64)
        if den.sum() <= 0:
            return None
        full = float(num.sum() / den.sum())

        def statistic(num: np.ndarray, den: np.ndarray, axis: int = -1) -> np.ndarray:
            total = den.sum(axis=axis)
            return np.where(total > 0, num.sum(axis=axis) / np.where(total > 0, total, 1.0), full)

        value, low, high = bootstrap_ci((num, den), statistic, seed=seed)
    else:
        value, low, high = bootstrap_ci([float(v) for v in values], seed=seed)
    return {"value": value, "ci": [low, high], "n": len(values)}


def summarize(rows: dict[str, list[dict]], skipped: list[Skipped], seed: int = 0) -> dict:
    """The metrics object: per task {"n", metric: value, ..., "ci": {metric: [low, high]},
    "n_scored": {metric: items}}, plus "skipped_lines"."""
    out: dict = {}
    for task, task_rows in rows.items():
        names = list(dict.fromkeys(k for r in task_rows for k in r["metrics"]))
        entry: dict = {"n": len(task_rows)}
        ci, scored = {}, {}
        for name in names:
            s = summarize_metric([r["metrics"].get(name) for r in task_rows], seed)
            entry[name] = None if s is None else s["value"]
            ci[name] = None if s is None else s["ci"]
            scored[name] = 0 if s is None else s["n"]
        out[task] = {**entry, "ci": ci, "n_scored": scored}
    out["skipped_lines"] = len(skipped)
    return out


# ---- running the model -----------------------------------------------------------------------------

class Evaluator:
    """Runs items through a `SpeechLM`; `scorer` (anything with `transcribe(wave, sr)`, e.g.
    `WhisperScorer`) judges generated speech independently of our model. With `audio_dir`, each generated
    answer is kept there as `<item id>.wav` and named in the row's output (`"audio"`, relative to the
    folder above `audio_dir`, the report's), so that what was scored can be listened to. `dnsmos=False`
    leaves the DNSMOS columns empty: on one CPU thread DNSMOS is a large share of the time of a spoken item (a
    short answer is tiled to 16 s and scored in seven 9 s windows), which a study that reports no DNSMOS for
    the task need not spend. `reference_cache` (a JSON file, `TranscriptCache`) keeps the scorer's
    transcripts of reference recordings across evals, which hear the same references for every model."""

    def __init__(self, lm, scorer=None, audio_dir: str | Path | None = None, dnsmos: bool = True,
                 reference_cache: str | Path | None = None) -> None:
        from ttt.eval.scorer import TranscriptCache

        self.lm, self.scorer, self.dnsmos = lm, scorer, dnsmos
        self.audio_dir = None if audio_dir is None else Path(audio_dir)
        self._references = None if reference_cache is None else TranscriptCache(reference_cache, scorer)
        self._heard_references: dict[Path, str] = {}
        self._audio_names: set[str] = set()

    def _heard_reference(self, path: Path, audio: tuple[np.ndarray, int] | None = None) -> str:
        """The scorer's transcript of a reference wave, once per file: eval splits reuse a reference
        (the same correct answer, in the same voice) for every voice that asks its question. `audio` is
        the file's (wave, rate) when the caller has it already; otherwise it is read on a cache miss only."""
        if path not in self._heard_references:
            if self._references is not None:
                self._heard_references[path] = self._references.transcribe_file(path, audio)
            else:
                self._heard_references[path] = self.scorer.transcribe(*(audio or load_audio(path)))
        return self._heard_references[path]

    def __call__(self, item: EvalItem) -> dict:
        return getattr(self, item.task)(item)

    def batch(self, items: list[EvalItem]) -> list[dict]:
        """Rows of same-task text-output items (`BATCHED_TASKS`), decoded as one batch; each row equals
        what `self(item)` gives."""
        tasks = {i.task for i in items}
        if len(tasks) != 1 or not tasks <= set(BATCHED_TASKS):
            raise ValueError(f"a batch holds items of one of {BATCHED_TASKS}, got {sorted(tasks)}")
        if tasks == {"asr"}:
            hyps = self.lm.transcribe_batch([load_audio(i.audio) for i in items])
            return [self._asr_row(i, h) for i, h in zip(items, hyps)]
        return [self._text_qa_row(i, h) for i, h in zip(items, self.lm.answer_batch([i.text for i in items]))]

    def asr(self, item: EvalItem) -> dict:
        return self._asr_row(item, self.lm.transcribe(*load_audio(item.audio)))

    def _asr_row(self, item: EvalItem, hyp: str) -> dict:
        metrics = {"wer": word_errors(item.text, hyp), "cer": char_errors(item.text, hyp)}
        if self.scorer is not None:  # the bar: an ASR model of the field (the scorer) on the very same audio
            metrics["reference_wer"] = word_errors(item.text, self._heard_reference(item.audio))
        return {"output": {"text": hyp}, "metrics": metrics}

    def text_qa(self, item: EvalItem) -> dict:
        return self._text_qa_row(item, self.lm.answer(item.text))

    def _text_qa_row(self, item: EvalItem, hyp: str) -> dict:
        return {"output": {"text": hyp}, "metrics": {"accuracy": text_answer_correct(hyp, item.answer)}}

    def tts(self, item: EvalItem) -> dict:
        start = time.perf_counter()
        spoken = self.lm.speak(item.text)
        return self._keep_audio(item, spoken, self._speech(spoken, time.perf_counter() - start, item.text, item.audio))

    def spoken_qa(self, item: EvalItem) -> dict:
        start = time.perf_counter()
        spoken = self.lm.chat(*load_audio(item.audio))
        wall = time.perf_counter() - start
        # The spoken answer is judged against what the model wrote: the two modalities must agree.
        row = self._speech(spoken, wall, spoken.text if normalize(spoken.text) else None, None)
        if item.answer_audio is not None:
            # The scale for the intelligibility above: the scorer on the reference voice's correct answer.
            heard_reference = self._heard_reference(item.answer_audio)
            row["metrics"]["reference_wer"] = word_errors(item.answer, heard_reference)
        row["metrics"]["text_accuracy"] = text_answer_correct(spoken.text, item.answer)
        row["metrics"]["audio_accuracy"] = audio_answer_correct(row["output"]["transcript"], item.answer)
        return self._keep_audio(item, spoken, row)

    def _keep_audio(self, item: EvalItem, spoken, row: dict) -> dict:
        """With `audio_dir`, write the answer's wave (if it has any) and name it in `row["output"]["audio"]`.
        The file name is the item id made safe for a path; an id met twice gets its line number added."""
        if self.audio_dir is None or len(spoken.wave) == 0:
            return row
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", item.id).strip("._") or "item"
        name = f"{stem}.wav" if f"{stem}.wav" not in self._audio_names else f"{stem}-line{item.line}.wav"
        self._audio_names.add(name)
        save_audio(self.audio_dir / name, spoken.wave, spoken.sample_rate)
        row["output"]["audio"] = f"{self.audio_dir.name}/{name}"
        return row

    def _speech(self, spoken, wall: float, ref_text: str | None, ref_audio: Path | None) -> dict:
        """Metrics of generated speech: intelligibility, quality, speed, and (with a reference
        rendering) the scorer's WER on it, MCD-DTW and stop accuracy."""
        from ttt.eval.quality import dnsmos

        wave, sr, result = spoken.wave, spoken.sample_rate, spoken.result
        seconds = len(wave) / sr
        heard = self.scorer.transcribe(wave, sr) if seconds > 0 else ""
        m: dict = {
            "produced_audio": seconds > 0,
            "intelligibility_wer": word_errors(ref_text, heard) if ref_text else None,
            "forward_passes_per_audio_s": (result.forward_passes, seconds),
            "audio_forward_passes_per_audio_s": (result.audio_forward_passes, seconds),
            "rtf": (wall, seconds),
            "diffusion_s_per_audio_s": (result.audio_wall_seconds, seconds),
            "time_to_first_audio_s": spoken.first_audio_s,
            "dnsmos_ovrl": None, "dnsmos_p808": None,
        }
        if seconds > 0 and self.dnsmos:
            try:
                quality = dnsmos(wave, sr)
                m["dnsmos_ovrl"], m["dnsmos_p808"] = quality["ovrl"], quality["p808"]
            except ValueError as err:  # digital silence
                log.debug("no DNSMOS: %s", err)
        if ref_audio is not None:
            ref_wave, ref_sr = load_audio(ref_audio)
            m["reference_wer"] = word_errors(ref_text, self._heard_reference(ref_audio, (ref_wave, ref_sr)))
            m["length_ratio"] = length_ratio(seconds, len(ref_wave) / ref_sr)
            m["stop_within_20pct"] = stopped_on_time(m["length_ratio"])
            m["mcd_dtw_db"] = mcd_dtw(resample(ref_wave, ref_sr, sr), wave, sr) if seconds > 0 else None
        return {"output": {"text": spoken.text, "transcript": heard, "audio_s": seconds}, "metrics": m}


def _groups(items: list[EvalItem], batch_size: int) -> list[list[EvalItem]]:
    """Consecutive items of one batched task, up to `batch_size` a group; every other item alone."""
    groups: list[list[EvalItem]] = []
    for item in items:
        last = groups[-1] if groups else None
        if (last and item.task in BATCHED_TASKS and last[0].task == item.task and len(last) < batch_size):
            last.append(item)
        else:
            groups.append([item])
    return groups


def run(evaluator: Callable[[EvalItem], dict], items: list[EvalItem], skipped: list[Skipped],
        progress: bool = True, batch_size: int = 1) -> dict[str, list[dict]]:
    """Rows per task, in data order. An item whose input the model or codec rejects (ValueError) is
    logged with its file:line and added to `skipped`; the run continues. With `batch_size` > 1,
    consecutive ASR / text-QA items are decoded as batches (`Evaluator.batch`; the rows are the same); a
    batch that fails is retried item by item, so one bad item still costs only itself."""
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    rows: dict[str, list[dict]] = {t: [] for t in TASKS if any(i.task == t for i in items)}
    bar = tqdm(total=len(items), desc="eval", unit="item", disable=not progress)
    for group in _groups(items, batch_size):
        results: list[dict | None] | None = None
        if len(group) > 1:
            try:
                results = evaluator.batch(group)
            except ValueError:
                results = None
        for item, row in zip(group, results or [None] * len(group)):
            if row is None:
                try:
                    row = evaluator(item)
                except ValueError as err:
                    skipped.append(Skipped(item.file, item.line, f"{item.task} failed: {err}"))
                    log.warning("skipping %s", skipped[-1])
                    continue
            rows[item.task].append({"id": item.id, "source": item.source, **row})
        bar.update(len(group))
    bar.close()
    return rows
