"""Open-vocabulary examples in the corpus: split-true sentences, test voices training never hears,
per-sentence voice variation and noise, and a rendering cache that renders nothing twice."""
import dataclasses
import json

import numpy as np
import pytest

from ttt.cli import main
from ttt.corpus.sources import Sentence
from ttt.corpus.synth import SIZES, SPLITS, build_corpus, cache_path, open_voices_for, plan_corpus
from ttt.corpus.voices import (
    ALL_VOICES, OPEN_TEST_VOICES, OPEN_TRAIN_VOICES, TARGET_VOICE, TEST_ONLY_VOICES, UNSEEN_VOICES, add_noise,
)

WORDS = "the a cat dog sees likes big small red old house tree near under".split()


def _open_text(per_split: dict[str, int]) -> dict[str, list[Sentence]]:
    out = {}
    for split, n in per_split.items():
        out[split] = []
        for i in range(n):
            words = [WORDS[(i * 7 + k * 3 + len(split)) % len(WORDS)] for k in range(4 + i % 3)]
            source = ("wordnet", "fortunes")[i % 2]
            out[split].append(Sentence(f"{split.capitalize()} {' '.join(words)} {i}.", source, f"{source}:{split}{i}"))
    return out


def test_open_examples_use_their_split_and_unheard_test_voices():
    text = _open_text({"train": 40, "valid": 20, "test": 20})
    size = dataclasses.replace(SIZES["tiny"], open_sentences=30, open_voices=2, eval_fraction=0.3)
    examples, _ = plan_corpus(0, size, sources=("world", "wordnet", "fortunes"), open_text=text)
    voices = {}
    for split in SPLITS:
        own = {s.text for s in text[split]}
        opened = [ex for ex in examples[split] if ex["key"].startswith(("wordnet:", "fortunes:"))]
        assert {ex["answer"] for ex in opened} <= own
        n = 30 if split == "train" else 9
        assert sum(ex["task"] == "tts" for ex in opened) == n
        assert sum(ex["task"] == "asr" for ex in opened) == 2 * n
        assert {ex["answer_voice"] for ex in opened if ex["task"] == "tts"} == {TARGET_VOICE}
        assert {s.split(":")[0] for s in (ex["key"] for ex in opened)} == {"wordnet", "fortunes"}
        voices[split] = {ex["question_voice"] for ex in opened if ex["task"] == "asr"}
    heard = voices["train"] | voices["valid"]
    assert voices["test"] <= set(OPEN_TEST_VOICES) | set(TEST_ONLY_VOICES)
    assert not heard & voices["test"]
    assert not (set(open_voices_for("train")) & set(open_voices_for("test")))
    assert not set(UNSEEN_VOICES) & (set(open_voices_for("train")) | set(open_voices_for("test")))
    # the world's examples are drawn as without open sources
    world_only, _ = plan_corpus(0, SIZES["tiny"])
    for split in SPLITS:
        assert examples[split][:len(world_only[split])] == world_only[split]


def test_open_only_corpus_has_no_world_examples_and_checks_counts():
    text = _open_text({"train": 5, "valid": 3, "test": 3})
    size = dataclasses.replace(SIZES["tiny"], open_sentences=50)
    examples, _ = plan_corpus(1, size, sources=("wordnet", "fortunes"), open_text=text)
    assert all(ex["key"].startswith(("wordnet:", "fortunes:")) for s in SPLITS for ex in examples[s])
    assert sum(ex["task"] == "tts" for ex in examples["train"]) == 5  # all there are
    with pytest.raises(ValueError, match="open_voices=99"):
        plan_corpus(1, dataclasses.replace(size, open_voices=99), sources=("wordnet",), open_text=text)
    with pytest.raises(ValueError, match="open-vocabulary source"):
        plan_corpus(1, size)


def test_qa_rows_become_spoken_qa_of_their_split():
    qa = [{"question": f"What is a {w}?", "answer": f"A {w} is a thing.", "doc": f"glosses:noun:{i}",
           "split": SPLITS[i % 3]} for i, w in enumerate(WORDS)]
    size = dataclasses.replace(SIZES["tiny"], open_qa=3)
    examples, _ = plan_corpus(0, size, sources=("wordnet",), open_text={s: [] for s in SPLITS}, qa=qa)
    for split in SPLITS:
        rows = [ex for ex in examples[split] if ex["task"] == "spoken_qa"]
        assert rows and {ex["key"] for ex in rows} <= {q["doc"] for q in qa if q["split"] == split}
        assert all(ex["answer_voice"] == TARGET_VOICE and ex["question_voice"] for ex in rows)
    assert sum(ex["task"] == "spoken_qa" for ex in examples["train"]) == 3


def test_varied_voice_knobs_are_per_sentence_and_reproducible():
    spec = OPEN_TRAIN_VOICES["espeak-en-us+f3-vary-noisy"]
    drawn = [spec.params_for(f"sentence number {i}") for i in range(30)]
    assert drawn[0] == spec.params_for("sentence number 0")
    rates = {p["rate"] for p in drawn}
    assert len(rates) > 10 and all(130 <= r <= 210 and isinstance(r, int) for r in rates)
    assert all(20 <= spec.noise_snr_for(f"s {i}") <= 35 for i in range(20))
    assert spec.cache_key("a b c") != spec.cache_key("a b d")
    assert ALL_VOICES["flite-slt"].params_for("x") == {"voice": "slt", "stretch": 1.0}
    assert ALL_VOICES["flite-slt"].noise_snr_for("x") is None


def test_add_noise_at_the_asked_snr():
    wave = (0.5 * np.sin(np.linspace(0, 2000, 32000))).astype(np.float32)
    noisy = add_noise(wave, 20.0, "seed")
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((noisy - wave).astype(np.float64) ** 2))
    assert abs(snr - 20.0) < 0.5
    assert np.array_equal(noisy, add_noise(wave, 20.0, "seed"))
    assert not np.array_equal(noisy, add_noise(wave, 20.0, "other"))


def test_cache_renders_each_wave_once(tmp_path):
    text = {"train": [Sentence("The old dog sees the cat.", "wordnet", "wordnet:noun:1"),
                      Sentence("A big red tree is near the house.", "fortunes", "fortunes:wisdom")],
            "valid": [Sentence("The small cat likes the tree.", "wordnet", "wordnet:noun:2")],
            "test": [Sentence("The house is under the old tree.", "wordnet", "wordnet:noun:3")]}
    size = dataclasses.replace(SIZES["tiny"], open_sentences=2, eval_fraction=0.5)
    cache = tmp_path / "cache"
    first = build_corpus(tmp_path / "a", seed=0, size=size, workers=2, sources=("wordnet", "fortunes"),
                         open_text=text, wav_cache=cache)
    assert first["rendered_wavs"] == sum(first["wavs"].values()) >= 8
    second = build_corpus(tmp_path / "b", seed=0, size=size, workers=2, sources=("wordnet", "fortunes"),
                          open_text=text, wav_cache=cache)
    assert second["rendered_wavs"] == 0 and second["total_hours"] == first["total_hours"]
    sources = {split: {json.loads(line)["source"] for line in (tmp_path / "a" / f"audio_{split}.jsonl").open()}
               for split in ("train", "valid", "test")}
    assert sources == {"train": {"wordnet", "fortunes"}, "valid": {"wordnet"}, "test": {"wordnet"}}
    for row in (tmp_path / "a" / "audio_train.jsonl").read_text().splitlines():
        row = json.loads(row)
        a, b = (tmp_path / "a" / row["audio"]).read_bytes(), (tmp_path / "b" / row["audio"]).read_bytes()
        assert a == b == (cache / cache_path(row["voice"], row["text"])).read_bytes()


def test_cli_open_qa_needs_a_valid_qa_file(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--sources", "wordnet", "--open-qa", "5"]) == 1
    assert "--open-qa needs --qa" in capsys.readouterr().err
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps({"question": "What is a dog?", "answer": "An animal.", "split": "train"}) + "\n")
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--sources", "wordnet", "--qa", str(bad)]) == 1
    assert f"{bad}:1: a QA row needs" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--sources", "wordnet,gcide"]) == 1
    assert "unknown --sources entry 'gcide'" in capsys.readouterr().err
