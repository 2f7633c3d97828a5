"""Build the synthetic speech corpus: deterministic from a seed, rendered by three offline TTS engines.

Layout of the output folder (all paths in manifests are relative to it):

- ``{split}.jsonl`` for train/valid/test, one example per line::

      {"id", "task", "question", "question_audio", "question_voice",
       "answer", "answer_audio", "answer_voice", "key"}

  tasks: ``asr`` (question_audio → answer = its transcript; question is null), ``tts`` (question =
  text → answer_audio in the target voice), ``spoken_qa`` (question_audio in any voice, question =
  its transcript → answer text + answer_audio in the target voice), ``text_chat`` (text only).
- ``audio_{split}.jsonl``: ``{"audio", "text", "voice", "source"}`` for every wav *first* used by that
  split, in the order train, valid, test, so valid/test lists never repeat audio that train has
  (the target-voice answer to a seen question is shared, and listed under train); ``source`` is the
  text source of the example that first uses it (``world``, ``qa`` or an open source's name), so a
  benchmark can measure open-vocabulary speech alone (``benchmarks.codec --sources``).
- ``wavs/{voice}/{sha1(text)}.wav``: 16 kHz mono PCM16, peak-normalised to 0.9 so every engine
  has one loudness; each (voice, text) pair is rendered once and shared by all examples.
- ``corpus_card.json``: counts per split and task, voices, held-out keys, hours of audio.

Held out (see `holdout`): a few arithmetic pairs per operation appear in no train example at all
(compositional generalisation), and two capitals are never *spoken* in train but are taught in train
as ``text_chat`` (cross-modal transfer: learned from text, asked by voice). Each held-out key belongs
to exactly one of valid or test. Some voices (`TEST_ONLY_VOICES`) speak only in test. Answers and
assistant speech always use the one target voice, so the model has one voice to learn.

The world has only ~1,600 sentences a train TTS example may read, so `tts_phrases` adds train-only TTS
examples that read random word sequences (key ``phrase``) drawn from the world's own sentences, word by
word, never containing one of those sentences: the target voice saying its words in new orders and
neighbourhoods, which is what speaking an unseen combination asks for. `counting` adds train-only
``text_chat`` examples (key ``count``) that count up or down through a few numbers: the numbers' order,
which an unseen sum or difference needs, without stating any fact.

Open-vocabulary sources (`sources`: any of ``wordnet``, ``glosses``, ``fortunes`` from
`ttt.corpus.sources`, beside or instead of ``world``) add, per split, `open_sentences` sentences of that
split's own documents (train's count; valid/test get `eval_fraction` of it), taken in turn from each
source: each is read by the target voice (a ``tts`` example) and spoken by `open_voices` input voices
(``asr`` examples). Input voices come from `OPEN_TRAIN_VOICES` (rate/pitch/length drawn per sentence,
some with light noise) and the standard speakers in train and valid, and only from `OPEN_TEST_VOICES` and
`TEST_ONLY_VOICES` in test, so test speech is by voices training never hears. Their key is the source
document ("wordnet:noun:00217593"). `qa` (rows of ``{"question", "answer", "doc", "split"}``, e.g. the
self-distilled answers of `ttt.corpus.qa`) adds spoken-QA examples the same way, up to `open_qa` per split.
The world's examples come first and are drawn exactly as without open sources.

Rendering cache (`wav_cache`): every wave is stored once under ``{wav_cache}/{voice}/{key}.wav``, `key`
a digest of the engine, its knobs for that sentence, the noise and the text (`VoiceSpec.cache_key`),
and hard-linked (or copied) into the corpus, so a rebuild, or another corpus sharing sentences, renders
nothing twice. A wave taken from the cache is the one first rendered; espeak-ng and piper waves rendered
in another batch can differ in the last bits (see `ttt.corpus.voices`), never in what is said.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from ttt.corpus.voices import (
    ALL_VOICES, EXTRA_TRAIN_VOICES, OPEN_TEST_VOICES, OPEN_TRAIN_VOICES, TARGET_VOICE, TEST_ONLY_VOICES, VOICES,
    add_noise, make_engine,
)
from ttt.corpus.world import ARITHMETIC_TOPICS, Item, build_world, counting_runs

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
TRAIN_VOICE_SETS = ("standard", "extra", "all")
TASKS = ("asr", "tts", "spoken_qa", "text_chat")
SAMPLE_RATE = 16000
PEAK = 0.9
HELDOUT_ARITHMETIC_FRACTION = 0.08
HELDOUT_CAPITALS = 2
PIPER_ITEMS_PER_SHARD = 100
MAX_PIPER_SHARDS = 32
FLITE_JOB_SIZE = 200
ESPEAK_JOB_SIZE = 20000  # larger than any world corpus's espeak-ng renders, whose layout stays as it was


@dataclass(frozen=True)
class CorpusSize:
    """Examples per task for train; valid and test each get `eval_fraction` of it (at least 2)."""

    spoken_qa: int
    asr: int
    tts: int
    text_chat: int
    eval_fraction: float = 0.08
    tts_phrases: int = 0
    counting: int = 0
    open_sentences: int = 0
    open_voices: int = 1
    open_qa: int = 0

    def for_split(self, split: str) -> dict[str, int]:
        counts = {task: getattr(self, task) for task in TASKS}
        open_counts = {"open_sentences": self.open_sentences, "open_qa": self.open_qa}
        if split == "train":
            return {**counts, "tts_phrases": self.tts_phrases, "counting": self.counting, **open_counts,
                    "open_voices": self.open_voices}
        return {**{task: max(2, round(n * self.eval_fraction)) for task, n in counts.items()},
                **{k: max(2, round(n * self.eval_fraction)) if n else 0 for k, n in open_counts.items()},
                "open_voices": self.open_voices}


SIZES = {
    "tiny": CorpusSize(spoken_qa=10, asr=6, tts=6, text_chat=10, eval_fraction=0.3),
    "small": CorpusSize(spoken_qa=600, asr=300, tts=200, text_chat=400, eval_fraction=0.15),
    "default": CorpusSize(spoken_qa=5000, asr=2500, tts=1000, text_chat=3000),
}


@dataclass(frozen=True)
class Holdout:
    """Which keys each split may use. `heldout[key]` is "valid" or "test"; `text_only` keys are
    held out from spoken train examples only."""

    heldout: dict[str, str]
    text_only: frozenset[str]

    def allowed(self, item: Item, split: str, spoken: bool) -> bool:
        owner = self.heldout.get(item.key)
        if owner is None:
            return True
        if split == "train":
            return not spoken and item.key in self.text_only
        return owner == split


def holdout(items: list[Item], seed: int) -> Holdout:
    """Draw the held-out combinations: a fraction of each arithmetic operation, and two capitals."""
    rng = random.Random(f"holdout-{seed}")
    heldout: dict[str, str] = {}
    for topic in ARITHMETIC_TOPICS:
        keys = [it.key for it in items if it.topic == topic]
        chosen = rng.sample(keys, max(2, round(len(keys) * HELDOUT_ARITHMETIC_FRACTION)))
        heldout.update({k: SPLITS[1 + i % 2] for i, k in enumerate(chosen)})
    capitals = rng.sample([it.key for it in items if it.topic == "capital"], HELDOUT_CAPITALS)
    heldout.update({k: SPLITS[1 + i % 2] for i, k in enumerate(capitals)})
    return Holdout(heldout, frozenset(capitals))


def voices_for(split: str, train_voices: str = "standard") -> list[str]:
    """Input voices a split may use: test-only voices appear in test and nowhere else. `train_voices`
    changes train only ("extra": just `EXTRA_TRAIN_VOICES`, "all": both sets): valid and test of any corpus
    are spoken by the default corpus's speakers."""
    if train_voices not in TRAIN_VOICE_SETS:
        raise ValueError(f"unknown train voice set {train_voices!r}; expected one of {', '.join(TRAIN_VOICE_SETS)}")
    if split == "test":
        return list(VOICES)
    standard = [v for v in VOICES if v not in TEST_ONLY_VOICES]
    if split != "train" or train_voices == "standard":
        return standard
    return list(EXTRA_TRAIN_VOICES) + (standard if train_voices == "all" else [])


def open_voices_for(split: str) -> list[str]:
    """Input voices of open-vocabulary examples: test's only from voices no other split uses."""
    if split == "test":
        return list(OPEN_TEST_VOICES) + list(TEST_ONLY_VOICES)
    return list(OPEN_TRAIN_VOICES) + [v for v in VOICES if v not in TEST_ONLY_VOICES]


def wav_path(voice: str, text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    return f"wavs/{voice}/{digest}.wav"


PHRASE = Item("phrase", "phrase", (), "")
COUNT = Item("count", "count", (), "")


def _triples(sentences) -> set[tuple[str, ...]]:
    """Every run of three consecutive words."""
    return {tuple(w[i:i + 3]) for s in sentences for w in [s.split()] for i in range(len(w) - 2)}


class _SplitBuilder:
    """Draws the examples of one split; `renders` collects every (voice, text) it needs spoken."""

    def __init__(self, split: str, items: list[Item], hold: Holdout, rng: random.Random,
                 train_renders: set[tuple[str, str]], train_voices: str = "standard") -> None:
        self.split, self.rng, self.hold = split, rng, hold
        self.train_renders = train_renders
        self.items = items
        self.voices = voices_for(split, train_voices)
        self.renders: dict[tuple[str, str], None] = {}
        self.examples: list[dict] = []
        self.task_counts: Counter[str] = Counter()
        self._pools: dict[bool, tuple[list[Item], list[Item]]] = {}

    def pool(self, spoken: bool) -> tuple[list[Item], list[Item]]:
        """(held-out items owned by this split, other items the split may use)."""
        if spoken not in self._pools:
            allowed = [it for it in self.items if self.hold.allowed(it, self.split, spoken)]
            own = [it for it in allowed if self.hold.heldout.get(it.key) == self.split]
            self._pools[spoken] = (own, [it for it in allowed if it not in own])
        return self._pools[spoken]

    def pick_item(self, spoken: bool) -> Item:
        """In valid/test half of the draws are uniform over the split's own held-out keys; the rest
        are half arithmetic, half facts (facts are few, so they would drown otherwise)."""
        own, other = self.pool(spoken)
        if own and self.rng.random() < 0.5:
            return self.rng.choice(own)
        arithmetic = [it for it in other if it.topic in ARITHMETIC_TOPICS]
        facts = [it for it in other if it.topic not in ARITHMETIC_TOPICS]
        group = arithmetic if arithmetic and (not facts or self.rng.random() < 0.5) else facts
        return self.rng.choice(group)

    def pick_voice(self, text: str) -> str:
        """A voice for an input utterance; in test half of them are test-only voices; outside train,
        a (voice, text) rendering that train already has is avoided."""
        voices = self.voices
        if self.split == "test" and self.rng.random() < 0.5:
            voices = list(TEST_ONLY_VOICES)
        for _ in range(20):
            voice = self.rng.choice(voices)
            if (voice, text) not in self.train_renders:
                break
        return voice

    def audio(self, voice: str | None, text: str) -> str | None:
        if voice is None:
            return None
        self.renders[(voice, text)] = None
        return wav_path(voice, text)

    def add(self, task: str, item: Item, *, question: str | None, answer: str,
            spoken: str | None = None, spoken_voice: str | None = None,
            answer_voice: str | None = None) -> None:
        """Append one manifest row; `spoken` is the text rendered by `spoken_voice` as input audio."""
        self.task_counts[task] += 1
        self.examples.append({
            "id": f"{self.split}-{task}-{self.task_counts[task] - 1:05d}",
            "task": task,
            "question": question,
            "question_audio": self.audio(spoken_voice, spoken) if spoken else None,
            "question_voice": spoken_voice,
            "answer": answer,
            "answer_audio": self.audio(answer_voice, answer),
            "answer_voice": answer_voice,
            "key": item.key,
        })

    def build(self, counts: dict[str, int]) -> None:
        for _ in range(counts["spoken_qa"]):
            item = self.pick_item(spoken=True)
            question = self.rng.choice(item.questions)
            self.add("spoken_qa", item, question=question, answer=item.answer, spoken=question,
                     spoken_voice=self.pick_voice(question), answer_voice=TARGET_VOICE)
        for _ in range(counts["asr"]):
            item = self.pick_item(spoken=True)
            text = self.rng.choice(item.questions + (item.answer,))
            self.add("asr", item, question=None, answer=text, spoken=text,
                     spoken_voice=self.pick_voice(text))
        for item, text in self.tts_texts(counts["tts"]):
            self.add("tts", item, question=text, answer=text, answer_voice=TARGET_VOICE)
        for _ in range(counts["text_chat"]):
            item = self.pick_item(spoken=False)
            self.add("text_chat", item, question=self.rng.choice(item.questions),
                     answer=item.answer)
        for text in self.phrases(counts.get("tts_phrases", 0)):
            self.add("tts", PHRASE, question=text, answer=text, answer_voice=TARGET_VOICE)
        if counts.get("counting"):
            runs = counting_runs()
            for _ in range(counts["counting"]):
                request, answer = self.rng.choice(runs)
                self.add("text_chat", COUNT, question=request, answer=answer)

    def build_open(self, sentences: list, counts: dict[str, int], qa: list[dict]) -> None:
        """The open-vocabulary examples of this split (see the module docstring)."""
        voices = open_voices_for(self.split)
        if counts["open_voices"] > len(voices):
            raise ValueError(f"open_voices={counts['open_voices']} but the {self.split} split has only "
                             f"{len(voices)} open-vocabulary input voices")
        for sentence in _balanced(sentences, counts["open_sentences"], self.rng):
            item = Item(sentence.doc, sentence.source, (), sentence.text)
            self.add("tts", item, question=sentence.text, answer=sentence.text, answer_voice=TARGET_VOICE)
            for voice in self.rng.sample(voices, counts["open_voices"]):
                self.add("asr", item, question=None, answer=sentence.text, spoken=sentence.text,
                         spoken_voice=voice)
        rows = [row for row in qa if row["split"] == self.split]
        self.rng.shuffle(rows)
        for row in rows[:counts["open_qa"]]:
            item = Item(row["doc"], "open_qa", (row["question"],), row["answer"])
            self.add("spoken_qa", item, question=row["question"], answer=row["answer"], spoken=row["question"],
                     spoken_voice=self.rng.choice(voices), answer_voice=TARGET_VOICE)

    def phrases(self, count: int) -> list[str]:
        """`count` distinct sequences of 3-8 words, each drawn from all the world's sentences word by word
        (so common words stay common), none containing a sentence of the world nor a word triple that
        only held-out sentences have ("ten minus four"), so no held-out fact is even half spoken."""
        sentences = [s for it in self.items for s in (*it.questions, it.answer)]
        held = {s for it in self.items if it.key in self.hold.heldout for s in (*it.questions, it.answer)}
        forbidden = _triples(held) - _triples(s for s in sentences if s not in held)
        words = [w for s in sentences for w in s.split()]
        chosen: dict[str, None] = {}
        while len(chosen) < count:
            text = " ".join(self.rng.choice(words) for _ in range(self.rng.randint(3, 8)))
            if not (_triples([text]) & forbidden or any(f" {s} " in f" {text} " for s in sentences)):
                chosen[text] = None
        return list(chosen)

    def tts_texts(self, count: int) -> list[tuple[Item, str]]:
        """Answers first (held-out ones first outside train), then questions; each text once."""
        own, other = self.pool(spoken=True)
        ordered: list[tuple[Item, str]] = []
        for group in (own, other):
            shuffled = list(group)
            self.rng.shuffle(shuffled)
            ordered += [(it, it.answer) for it in shuffled]
        questions = [(it, q) for it in own + other for q in it.questions]
        self.rng.shuffle(questions)
        ordered += questions
        seen: set[str] = set()
        chosen = []
        for item, text in ordered:
            if len(chosen) == count:
                break
            if text in seen or (self.split != "train" and (TARGET_VOICE, text) in self.train_renders
                                and item.key not in self.hold.heldout):
                continue
            seen.add(text)
            chosen.append((item, text))
        return chosen


def _source_of(key: str) -> str:
    """The text source of an example key: an open-vocabulary source's name, "qa" for a question of
    `ttt data qa`, or "world"."""
    from ttt.corpus.sources import OPEN_SOURCES

    prefix = key.split(":", 1)[0]
    return prefix if prefix in (*OPEN_SOURCES, "qa") else "world"


def _balanced(sentences: list, count: int, rng: random.Random) -> list:
    """`count` sentences (or all there are), taken in turn from each source, each source shuffled."""
    by_source: dict[str, list] = defaultdict(list)
    for sentence in sentences:
        by_source[sentence.source].append(sentence)
    queues = []
    for source in sorted(by_source):
        pool = list(by_source[source])
        rng.shuffle(pool)
        queues.append(pool)
    chosen: list = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen


def plan_corpus(seed: int, size: CorpusSize, train_voices: str = "standard", sources: tuple[str, ...] = ("world",),
                open_text: dict[str, list] | None = None, qa: list[dict] | None = None,
                ) -> tuple[dict[str, list[dict]], Holdout]:
    """All examples of all splits (no audio rendered yet), as manifest dicts. `open_text` holds each
    split's open-vocabulary sentences (`ttt.corpus.sources.build_text`), needed when `sources` names one."""
    if (size.open_sentences or size.open_qa) and open_text is None and qa is None:
        raise ValueError("open_sentences/open_qa need open-vocabulary sources (e.g. sources wordnet,fortunes)")
    items = build_world()
    hold = holdout(items, seed)
    examples: dict[str, list[dict]] = {}
    train_renders: set[tuple[str, str]] = set()
    for split in SPLITS:
        builder = _SplitBuilder(split, items, hold, random.Random(f"{split}-{seed}"), train_renders,
                                train_voices)
        counts = size.for_split(split)
        if "world" in sources:
            builder.build(counts)
        if open_text is not None or qa:
            builder.build_open((open_text or {}).get(split, []), counts, qa or [])
        examples[split] = builder.examples
        if split == "train":
            train_renders = set(builder.renders)
    return examples, hold


def _renders_by_split(examples: dict[str, list[dict]]) -> tuple[dict[str, list[tuple[str, str]]], dict[tuple[str, str], str]]:
    """Each distinct (voice, text) under the first split that uses it, in first-use order, and the text
    source (`_source_of`) of the example that first uses it."""
    source: dict[tuple[str, str], str] = {}
    out: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        out[split] = []
        for ex in examples[split]:
            for role in ("question", "answer"):
                voice = ex[f"{role}_voice"]
                if voice is None:
                    continue
                text = ex["answer"] if ex["task"] == "asr" else ex[role]
                if (voice, text) not in source:
                    source[(voice, text)] = _source_of(ex["key"])
                    out[split].append((voice, text))
    return out, source


def _jobs(renders: list[tuple[str, str]], seed: int) -> list[tuple[str, int, list[tuple[str, str]]]]:
    """Fixed work units (engine, engine seed, renders), cut from the corpus plan and never from the
    worker count, each rendered in sorted order by a freshly seeded engine (see
    `ttt.corpus.voices` for why that makes piper and espeak-ng reproducible). Piper gets a fresh
    ONNX session per shard; espeak-ng's state cannot be reset inside a process, so all of its
    renders form one unit (a few ms each), the first to run in a freshly spawned worker."""
    by_engine: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for voice, text in sorted(renders):
        by_engine[ALL_VOICES[voice].engine].append((voice, text))
    espeak = by_engine["espeak"]
    jobs = [("espeak", seed + i, espeak[i:i + ESPEAK_JOB_SIZE]) for i in range(0, len(espeak), ESPEAK_JOB_SIZE)]
    piper = by_engine["piper"]
    n_shards = max(1, min(MAX_PIPER_SHARDS, math.ceil(len(piper) / PIPER_ITEMS_PER_SHARD)))
    shards: list[list[tuple[str, str]]] = [[] for _ in range(n_shards)]
    for voice, text in piper:
        digest = hashlib.sha1(f"{voice}\n{text}".encode("utf-8")).digest()
        shards[int.from_bytes(digest[:4], "big") % n_shards].append((voice, text))
    jobs += [("piper", seed * 1009 + i, shard) for i, shard in enumerate(shards) if shard]
    flite = by_engine["flite"]
    jobs += [("flite", 0, flite[i:i + FLITE_JOB_SIZE]) for i in range(0, len(flite), FLITE_JOB_SIZE)]
    return jobs


def corpus_wave(wave: np.ndarray, rate: int, what: str) -> np.ndarray:
    """A synthesized wave as the corpus stores it: 16 kHz, peak at `PEAK`; silent or NaN audio is refused."""
    if rate != SAMPLE_RATE:
        wave = soxr.resample(np.asarray(wave, dtype=np.float32), rate, SAMPLE_RATE, quality="HQ")
    peak = float(np.max(np.abs(wave)))
    if not np.isfinite(peak) or peak < 1e-4:
        raise ValueError(f"silent or invalid audio from {what}")
    return np.clip(wave * (PEAK / peak), -1.0, 1.0)


def cache_path(voice: str, text: str) -> str:
    """Where the rendering cache keeps (voice, text): named by everything that decides its audio."""
    return f"{voice}/{ALL_VOICES[voice].cache_key(text)}.wav"


def render_wave(engine, voice: str, text: str) -> np.ndarray:
    """(voice, text) as the corpus stores it: the engine's wave at the voice's knobs for this sentence,
    16 kHz at peak `PEAK`, then the voice's light noise if it has one."""
    spec = ALL_VOICES[voice]
    wave = corpus_wave(*engine.synthesize(text, **spec.params_for(text)), f"voice {voice} for {text!r}")
    snr = spec.noise_snr_for(text)
    return wave if snr is None else add_noise(wave, snr, f"{voice}\n{text}")


def _render_job(job: tuple[str, int, list[tuple[str, str]], str, bool]) -> list[tuple[str, int]]:
    """Render one work unit into `out` (corpus layout, or cache layout when `cached`); returns
    (path relative to `out`, number of 16 kHz samples)."""
    import soundfile as sf

    engine_name, engine_seed, renders, out, cached = job
    engine = make_engine(engine_name, engine_seed)
    done = []
    for voice, text in renders:
        wave = render_wave(engine, voice, text)
        relative = cache_path(voice, text) if cached else wav_path(voice, text)
        path = Path(out) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        sf.write(tmp, wave, SAMPLE_RATE, subtype="PCM_16")
        tmp.replace(path)  # a cache never holds a half-written wave
        done.append((relative, len(wave)))
    return done


def _run_jobs(jobs: list, out: Path, workers: int, cached: bool) -> dict[str, int]:
    """Render every job in `workers` spawned processes (never in this one, whose espeak-ng state may
    already be used); returns the number of 16 kHz samples per path relative to `out`."""
    import multiprocessing

    from tqdm import tqdm

    lengths: dict[str, int] = {}
    if not jobs:
        return lengths
    tasks = [(*job, str(out), cached) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with tqdm(total=sum(len(job[2]) for job in jobs), desc="synthesizing", unit="wav") as bar, \
            context.Pool(max(1, min(workers, len(tasks)))) as pool:
        for done in pool.imap_unordered(_render_job, tasks):
            lengths.update(done)
            bar.update(len(done))
    return lengths


def _render_all(renders: list[tuple[str, str]], seed: int, out: Path, workers: int,
                wav_cache: Path | None = None) -> tuple[dict[str, int], int]:
    """Every (voice, text) as `out/wav_path(...)`; with `wav_cache`, only the ones the cache lacks are
    rendered (into the cache) and all are linked from it. Returns the samples per corpus wav path and how
    many waves were rendered."""
    if wav_cache is None:
        return _run_jobs(_jobs(renders, seed), out, workers, cached=False), len(renders)
    import soundfile as sf

    wav_cache = Path(wav_cache)
    missing = [(v, t) for v, t in renders if not (wav_cache / cache_path(v, t)).exists()]
    rendered = _run_jobs(_jobs(missing, seed), wav_cache, workers, cached=True)
    lengths = {}
    for voice, text in renders:
        source, target = wav_cache / cache_path(voice, text), out / wav_path(voice, text)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system
            shutil.copyfile(source, target)
        frames = rendered.get(cache_path(voice, text))
        lengths[wav_path(voice, text)] = frames if frames is not None else sf.info(str(source)).frames
    return lengths, len(missing)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_corpus(out: str | Path, seed: int = 0, size: CorpusSize | str = "default",
                 workers: int = 1, overwrite: bool = False, train_voices: str = "standard",
                 sources: tuple[str, ...] | list[str] = ("world",), open_text: dict[str, list] | None = None,
                 qa: list[dict] | None = None, wav_cache: str | Path | None = None) -> dict:
    """Plan, render and write the corpus into `out`; returns the corpus card. `train_voices` picks the
    speakers of train's input audio (see `voices_for`); `sources` the text (see the module docstring), whose
    open-vocabulary sentences are extracted here unless `open_text` gives them; `wav_cache` a rendering
    cache folder."""
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown corpus size {size!r}; expected one of {', '.join(SIZES)}")
        size = SIZES[size]
    if min(size.spoken_qa, size.asr, size.tts, size.text_chat, size.tts_phrases, size.counting,
           size.open_sentences, size.open_qa) < 0 or size.open_voices < 1:
        raise ValueError(f"corpus counts must be non-negative, got {size}")
    out = Path(out)
    existing = [out / name for name in ("wavs", "corpus_card.json") if (out / name).exists()]
    if existing and not overwrite:
        raise ValueError(f"{out} already holds a corpus ({existing[0].name}); "
                         "replace it with overwrite=True (CLI: --overwrite)")
    sources = tuple(sources)
    open_sources = [s for s in sources if s != "world"]
    if open_sources and open_text is None:
        from ttt.corpus.sources import build_text

        open_text, _ = build_text(open_sources, seed)
    if not open_sources and size.open_sentences:
        raise ValueError("open_sentences needs an open-vocabulary source (e.g. sources wordnet,fortunes)")
    examples, hold = plan_corpus(seed, size, train_voices, sources, open_text if open_sources else None, qa)
    renders, render_source = _renders_by_split(examples)
    if any(ALL_VOICES[v].engine == "flite" for split in SPLITS for v, _ in renders[split]):
        make_engine("flite")  # no flite binary: a clear error now, before anything is removed or rendered
    if overwrite and (out / "wavs").exists():
        shutil.rmtree(out / "wavs")
    out.mkdir(parents=True, exist_ok=True)

    all_renders = [r for split in SPLITS for r in renders[split]]
    log.info("planned %d examples and %d distinct wavs",
             sum(map(len, examples.values())), len(all_renders))
    lengths, rendered = _render_all(all_renders, seed, out, workers, wav_cache)
    log.info("rendered %d wavs, %d from the cache", rendered, len(all_renders) - rendered)

    for split in SPLITS:
        _write_jsonl(out / f"{split}.jsonl", examples[split])
        _write_jsonl(out / f"audio_{split}.jsonl", [
            {"audio": wav_path(v, t), "text": t, "voice": v, "source": render_source[(v, t)]}
            for v, t in renders[split]])
    card = _card(seed, size, examples, renders, lengths, hold, train_voices)
    card["sources"] = list(sources)
    card["examples_by_source"] = {split: dict(sorted(Counter(f"{ex['task']}:{_source_of(ex['key'])}"
                                                            for ex in examples[split]).items()))
                                  for split in SPLITS}
    card["rendered_wavs"] = rendered
    (out / "corpus_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _card(seed: int, size: CorpusSize, examples: dict[str, list[dict]],
          renders: dict[str, list[tuple[str, str]]], lengths: dict[str, int], hold: Holdout,
          train_voices: str) -> dict:
    def hours(pairs: list[tuple[str, str]]) -> float:
        return round(sum(lengths[wav_path(v, t)] for v, t in pairs) / SAMPLE_RATE / 3600, 4)

    by_engine: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for split in SPLITS:
        for voice, text in renders[split]:
            by_engine[ALL_VOICES[voice].engine].append((voice, text))
    used = sorted({v for split in SPLITS for v, _ in renders[split]})
    return {
        "seed": seed,
        "size": asdict(size),
        "sample_rate": SAMPLE_RATE,
        "examples": {s: dict(Counter(e["task"] for e in examples[s])) for s in SPLITS},
        "wavs": {s: len(renders[s]) for s in SPLITS},
        "hours": {s: hours(renders[s]) for s in SPLITS},
        "hours_by_engine": {e: hours(p) for e, p in sorted(by_engine.items())},
        "total_hours": hours([r for s in SPLITS for r in renders[s]]),
        "target_voice": TARGET_VOICE,
        "voices": {v: ALL_VOICES[v].engine for v in used},
        "test_only_voices": list(TEST_ONLY_VOICES),
        "train_voices": train_voices,
        "heldout_keys": {s: sorted(k for k, o in hold.heldout.items() if o == s)
                         for s in SPLITS[1:]},
        "text_only_in_train_keys": sorted(hold.text_only),
    }
