"""Corpus builder: deterministic, held-out keys and voices really held out, manifests well-formed."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import require_flite
from ttt.corpus.synth import PEAK, SIZES, SPLITS, TASKS, build_corpus, corpus_wave, plan_corpus
from ttt.corpus.voices import EXTRA_TRAIN_VOICES, TARGET_VOICE, TEST_ONLY_VOICES, VOICES
from ttt.corpus.world import counting_runs

FIELDS = {"id", "task", "question", "question_audio", "question_voice", "answer", "answer_audio",
          "answer_voice", "key"}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The tiny corpus built twice with one seed (different worker counts) and once with another."""
    require_flite()  # the corpus's voices include flite's
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root / "a", seed=0, size="tiny", workers=2)
    build_corpus(root / "b", seed=0, size="tiny", workers=1)
    return root / "a", root / "b"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes(corpora):
    a, b = _files(corpora[0]), _files(corpora[1])
    assert a.keys() == b.keys()
    assert sum(k.endswith(".wav") for k in a) > 30
    assert [k for k in a if a[k] != b[k]] == []


def test_other_seed_other_plan():
    first, _ = plan_corpus(0, SIZES["tiny"])
    second, _ = plan_corpus(1, SIZES["tiny"])
    assert first["train"] != second["train"]


def test_manifest_schema_and_audio(corpora):
    folder = corpora[0]
    card = json.loads((folder / "corpus_card.json").read_text())
    listed = set()
    for split in SPLITS:
        rows = _rows(folder / f"{split}.jsonl")
        assert card["examples"][split] == {t: sum(r["task"] == t for r in rows) for t in TASKS
                                           if any(r["task"] == t for r in rows)}
        assert len({r["id"] for r in rows}) == len(rows)
        for r in rows:
            assert set(r) == FIELDS and r["task"] in TASKS and r["answer"]
            spoken_in = r["task"] in ("asr", "spoken_qa")
            spoken_out = r["task"] in ("tts", "spoken_qa")
            assert (r["question_audio"] is not None) == spoken_in == (r["question_voice"] is not None)
            assert (r["answer_audio"] is not None) == spoken_out
            assert r["answer_voice"] == (TARGET_VOICE if spoken_out else None)
            assert (r["question"] is None) == (r["task"] == "asr")
            for path in (r["question_audio"], r["answer_audio"]):
                assert path is None or (folder / path).is_file()
        audio = _rows(folder / f"audio_{split}.jsonl")
        assert not listed & {a["audio"] for a in audio}  # each wav listed under one split only
        listed |= {a["audio"] for a in audio}
    assert listed == {str(p.relative_to(folder)) for p in folder.rglob("*.wav")}
    info = sf.info(next(folder.rglob("*.wav")))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert card["total_hours"] > 0


def test_heldout_keys_and_voices_absent_from_train():
    examples, hold = plan_corpus(0, SIZES["default"])
    train = examples["train"]
    assert len(hold.heldout) > 20 and hold.text_only
    spoken_train = [r for r in train if r["task"] != "text_chat"]
    assert not {r["key"] for r in spoken_train} & set(hold.heldout)
    text_train = {r["key"] for r in train if r["task"] == "text_chat"}
    assert text_train & set(hold.heldout) == set(hold.text_only)  # taught as text only
    for split in ("valid", "test"):
        keys = {r["key"] for r in examples[split]}
        own = {k for k, s in hold.heldout.items() if s == split}
        assert own <= keys and not keys & (set(hold.heldout) - own)
    voices = lambda split: {r["question_voice"] for r in examples[split]} - {None}
    assert not (voices("train") | voices("valid")) & set(TEST_ONLY_VOICES)
    assert set(TEST_ONLY_VOICES) <= voices("test")
    assert voices("train") == set(VOICES) - set(TEST_ONLY_VOICES)
    for split in SPLITS:
        assert {r["answer_voice"] for r in examples[split]} <= {TARGET_VOICE, None}


def test_train_voices_widen_train_only():
    standard, hold = plan_corpus(0, SIZES["small"])
    voices = lambda examples, split: {r["question_voice"] for r in examples[split]} - {None}
    usual = set(VOICES) - set(TEST_ONLY_VOICES)
    for choice, expected in (("extra", set(EXTRA_TRAIN_VOICES)), ("all", set(EXTRA_TRAIN_VOICES) | usual)):
        examples, other_hold = plan_corpus(0, SIZES["small"], train_voices=choice)
        assert voices(examples, "train") == expected and other_hold == hold
        assert voices(examples, "valid") <= usual and voices(examples, "test") <= set(VOICES)
        assert [r["task"] for r in examples["train"]] == [r["task"] for r in standard["train"]]
        assert not {r["key"] for r in examples["train"] if r["task"] != "text_chat"} & set(hold.heldout)
    with pytest.raises(ValueError, match="unknown train voice set"):
        plan_corpus(0, SIZES["tiny"], train_voices="everyone")


def test_refuses_to_overwrite(corpora):
    with pytest.raises(ValueError, match="already holds a corpus"):
        build_corpus(corpora[0], size="tiny")
    with pytest.raises(ValueError, match="unknown corpus size"):
        build_corpus(corpora[0] / "new", size="huge")


def test_zero_count_means_no_examples_of_that_task():
    import dataclasses

    examples, _ = plan_corpus(0, dataclasses.replace(SIZES["small"], tts=0, asr=0, text_chat=0))
    assert {ex["task"] for ex in examples["train"]} == {"spoken_qa"}
    assert sum(ex["task"] == "tts" for ex in examples["valid"]) == 2  # eval splits keep a minimum of 2


def test_tts_phrases_are_train_only_word_sequences_that_never_hold_a_world_sentence():
    import dataclasses

    from ttt.corpus.synth import _triples
    from ttt.corpus.world import build_world

    base, _ = plan_corpus(0, SIZES["small"])
    examples, hold = plan_corpus(0, dataclasses.replace(SIZES["small"], tts_phrases=300))
    phrases = [ex for ex in examples["train"] if ex["key"] == "phrase"]
    assert examples["train"][:len(base["train"])] == base["train"]  # the rest of the corpus is unchanged
    assert len(phrases) == 300 == len({ex["answer"] for ex in phrases})
    assert all(ex["task"] == "tts" and ex["question"] == ex["answer"] and ex["answer_voice"] == "piper-joe"
               for ex in phrases)
    sentences = {s for it in build_world() for s in (*it.questions, it.answer)}
    vocabulary = {w for s in sentences for w in s.split()}
    for ex in phrases:
        words = ex["answer"].split()
        assert 3 <= len(words) <= 8 and set(words) <= vocabulary
        assert not any(f" {s} " in f" {ex['answer']} " for s in sentences)
    assert not any(ex["key"] == "phrase" for split in ("valid", "test") for ex in examples[split])
    held = [s for it in build_world() if it.key in hold.heldout for s in (*it.questions, it.answer)]
    only_held = _triples(held) - _triples(s for s in sentences if s not in held)
    assert ("ten", "minus", "four") in only_held  # minus:10:4 is a held-out test key
    assert not any(_triples([ex["answer"]]) & only_held for ex in phrases)


def test_counting_examples_are_train_only_text_requests_to_count():
    base, _ = plan_corpus(0, SIZES["small"])
    examples, _ = plan_corpus(0, dataclasses.replace(SIZES["small"], counting=200))
    counts = [ex for ex in examples["train"] if ex["key"] == "count"]
    assert examples["train"][:len(base["train"])] == base["train"]  # the rest of the corpus is unchanged
    assert len(counts) == 200 == len(examples["train"]) - len(base["train"])
    runs = set(counting_runs())
    assert all(ex["task"] == "text_chat" and (ex["question"], ex["answer"]) in runs
               and ex["question_audio"] is None and ex["answer_audio"] is None for ex in counts)
    assert len({ex["question"] for ex in counts}) > 100  # drawn across the runs, not one repeated
    assert not any(ex["key"] == "count" for split in ("valid", "test") for ex in examples[split])


def test_corpus_wave_resamples_normalises_and_refuses_silence():
    wave = corpus_wave(0.1 * np.sin(np.arange(22050) / 5.0).astype(np.float32), 22050, "a test tone")
    assert len(wave) == 16000 and np.isclose(np.max(np.abs(wave)), PEAK, atol=1e-3)
    for bad in (np.zeros(1600, np.float32), np.full(1600, np.nan, np.float32)):
        with pytest.raises(ValueError, match="silent or invalid audio from a test tone"):
            corpus_wave(bad, 16000, "a test tone")


def test_missing_flite_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="system package flite"):
        build_corpus(tmp_path / "c", size="tiny")
    assert not (tmp_path / "c").exists()
