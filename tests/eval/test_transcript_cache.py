"""`TranscriptCache` / `ttt eval --reference-cache`: reference recordings are heard once across evals,
with the same results, and a changed file, another scorer or a broken cache is never served stale."""
import json

import numpy as np
import pytest
import soundfile as sf

from ttt.cli import main
from ttt.eval.harness import EvalItem, Evaluator
from ttt.eval.scorer import TranscriptCache, WhisperScorer

from helpers import ANSWER, QUESTION


class _Counting:
    """A scorer that says which call it is, so a served entry is told apart from a fresh one."""

    def __init__(self, identity="counting v1"):
        self.identity, self.calls = identity, 0

    def transcribe(self, wave, sample_rate):
        self.calls += 1
        return f"heard {self.calls} ({len(wave)} samples)"


def _wav(path, seconds=0.5, seed=0):
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(16000 * seconds)).astype(np.float32), 16000)
    return path


def test_a_reference_is_heard_once_across_runs_and_again_when_the_file_or_scorer_changes(tmp_path):
    ref, cache = _wav(tmp_path / "a.wav"), tmp_path / "heard.json"
    first = _Counting()
    assert TranscriptCache(cache, first).transcribe_file(ref) == "heard 1 (8000 samples)"
    later = _Counting()
    assert TranscriptCache(cache, later).transcribe_file(ref) == "heard 1 (8000 samples)" and later.calls == 0
    _wav(ref, seconds=0.25)  # the same path, other bytes
    assert TranscriptCache(cache, later).transcribe_file(ref) == "heard 1 (4000 samples)" and later.calls == 1
    other = _Counting("counting v2")
    assert TranscriptCache(cache, other).transcribe_file(ref) == "heard 1 (4000 samples)" and other.calls == 1
    assert set(json.loads(cache.read_text())) == {"counting v1", "counting v2"}
    assert len(json.loads(cache.read_text())["counting v1"]) == 2


def test_caches_open_side_by_side_merge_their_entries(tmp_path):
    a, b, cache = _wav(tmp_path / "a.wav", seed=1), _wav(tmp_path / "b.wav", seed=2), tmp_path / "heard.json"
    one, two = TranscriptCache(cache, _Counting()), TranscriptCache(cache, _Counting())  # both read an empty file
    one.transcribe_file(a)
    two.transcribe_file(b)
    assert len(json.loads(cache.read_text())["counting v1"]) == 2
    assert list(tmp_path.glob(".*.tmp")) == []


def test_a_broken_cache_or_a_scorer_without_identity_is_a_clear_error_and_nothing_is_overwritten(tmp_path):
    cache = tmp_path / "heard.json"
    cache.write_text("{not json")
    with pytest.raises(ValueError, match=r"heard\.json: not a transcript cache .*delete it"):
        TranscriptCache(cache, _Counting())
    cache.write_text('{"counting v1": ["a list"]}')
    with pytest.raises(ValueError, match=r"heard\.json: not a transcript cache"):
        TranscriptCache(cache, _Counting())
    assert cache.read_text() == '{"counting v1": ["a list"]}'
    with pytest.raises(ValueError, match="has no identity"):
        TranscriptCache(tmp_path / "new.json", _Counting(identity=None))
    assert not (tmp_path / "new.json").exists()


def test_the_evaluator_gives_the_same_rows_with_the_cache(tmp_path):
    ref = _wav(tmp_path / "q.wav")

    class _LM:
        def transcribe(self, wave, sr):
            return "heard"

    item = EvalItem(task="asr", id="a", text="heard 1 (8000 samples)", file="eval.jsonl", line=1, audio=ref)
    plain = Evaluator(_LM(), _Counting())(item)
    cached = [Evaluator(_LM(), scorer, reference_cache=tmp_path / "c.json")(item) for scorer in (_Counting(), _Counting())]
    assert cached[0] == cached[1] == plain and plain["metrics"]["reference_wer"][0] == 0


def test_whisper_names_what_its_transcripts_depend_on():
    identity = WhisperScorer().identity
    assert "tiny.en" in identity and "faster-whisper" in identity and "ctranslate2" in identity


def test_ttt_eval_reference_cache_hears_references_once_with_the_same_metrics(eval_dir, tiny_model_dir, write_jsonl,
                                                                              tmp_path, capsys, monkeypatch):
    data = write_jsonl(eval_dir / "eval_cache.jsonl", [
        {"task": "spoken_qa", "id": "s1", "text": QUESTION, "audio": "wavs/q.wav", "answer": ANSWER,
         "answer_audio": "wavs/a.wav"},
        {"task": "tts", "id": "t1", "text": ANSWER, "audio": "wavs/a.wav"},
    ])
    heard = []
    transcribe = WhisperScorer.transcribe
    monkeypatch.setattr(WhisperScorer, "transcribe", lambda self, w, sr: heard.append(len(w)) or transcribe(self, w, sr))
    cache, runs = tmp_path / "heard.json", []
    for name in ("one", "two"):
        heard.clear()
        assert main(["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / name),
                     "--json", "--max-new-tokens", "30", "--max-last-span", "26", "--threads", "1", "--no-progress",
                     "--no-dnsmos", "--reference-cache", str(cache)]) == 0
        runs.append((json.loads(capsys.readouterr().out), len(heard)))
    (one, heard_one), (two, heard_two) = runs
    assert heard_two == heard_one - 1  # the shared reference a.wav: heard in the first run only
    assert len(next(iter(json.loads(cache.read_text()).values()))) == 1
    for task in ("tts", "spoken_qa"):
        assert one[task]["reference_wer"] == two[task]["reference_wer"]
        assert one[task]["intelligibility_wer"] == two[task]["intelligibility_wer"]
