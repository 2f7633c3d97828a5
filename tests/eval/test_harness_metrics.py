"""The harness's metric definitions on hand-computed cases: WER/CER shares, answer matching, stop
accuracy, speed ratios, and the bootstrap summaries."""
import numpy as np
import pytest

from ttt.eval.harness import (Evaluator, answer_key, audio_answer_correct, char_errors, length_ratio,
                          stopped_on_time, summarize, summarize_metric, text_answer_correct, word_errors)
from ttt.generate import GenerationResult
from ttt.speech import SpokenAnswer


def test_word_and_char_errors_hand_computed():
    assert word_errors("seven plus four is eleven", "seven plus four is twelve") == (1, 5)
    assert word_errors("seven plus four is eleven", "7 + 4 is 11.") == (1, 5)  # "plus" deleted
    assert word_errors("one two", "") == (2, 2)  # silence: every word deleted
    assert char_errors("abcd", "abxd") == (1, 4)
    assert char_errors("ab cd", "ab") == (3, 5)


def test_corpus_wer_is_total_edits_over_total_words():
    # (1 sub + 1 del) / (4 + 2), not the mean of per-item WERs (0.25 and 0.5)
    pairs = [word_errors("a b c d", "a x c d"), word_errors("e f", "e")]
    assert summarize_metric(pairs)["value"] == pytest.approx(2 / 6)


@pytest.mark.parametrize("text,key", [
    ("seven plus four is eleven", ["eleven"]),
    ("The capital of France is Paris.", ["paris"]),
    ("a cow says moo", ["moo"]),
    ("It is 21", ["twenty", "one"]),
    ("eleven", ["eleven"]),
    ("seven plus four is", []),
])
def test_answer_key(text, key):
    assert answer_key(text) == key


@pytest.mark.parametrize("hyp,correct", [
    ("seven plus four is eleven", True),
    ("Seven plus four is 11.", True),
    ("eleven", True),
    ("the answer is eleven", True),
    ("seven plus four is twelve", False),
    ("eleven plus four is fifteen", False),  # the key word in the restatement does not count
    ("seven plus four is eleven or twelve", False),  # exact match of the fact
    ("", False),
])
def test_text_answer_exact_key_match(hyp, correct):
    assert text_answer_correct(hyp, "seven plus four is eleven") is correct


PLUS, MINUS = "seven plus four is eleven", "eleven minus zero is eleven"


@pytest.mark.parametrize("transcript,answer,correct", [
    ("Seven plus four is eleven.", PLUS, True),
    ("seven plus four is eleven. Thank you.", PLUS, True),  # words an ASR adds around the fact are fine
    ("eleven", PLUS, True),
    ("seven plus four is seven", PLUS, False),
    ("", PLUS, False),
    ("Eleven minus zero is ten.", MINUS, False),  # "eleven" only in the restated question
    ("Eleven minus zero is eleven.", MINUS, True),
])
def test_audio_answer_contains_key(transcript, answer, correct):
    assert audio_answer_correct(transcript, answer) is correct


def test_multiword_key_must_be_contiguous():
    assert audio_answer_correct("it is twenty one now", "the total is twenty one")
    assert not audio_answer_correct("it is twenty and one", "the total is twenty one")


def test_stop_accuracy():
    assert length_ratio(1.5, 2.0) == pytest.approx(0.75)
    assert [stopped_on_time(r) for r in (0.8, 1.0, 1.2, 0.79, 1.21, 0.0)] == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="positive"):
        length_ratio(1.0, 0.0)
    ratios = [0.5, 1.0, 1.1, 2.0]
    summary = summarize_metric([stopped_on_time(r) for r in ratios])
    assert summary["value"] == pytest.approx(0.5)
    assert summarize_metric(ratios)["value"] == pytest.approx(1.15)


def test_ci_contains_the_mean_and_missing_values_are_left_out():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, None]
    s = summarize_metric(values)
    assert s["n"] == 5 and s["value"] == pytest.approx(0.6)
    assert s["ci"][0] <= s["value"] <= s["ci"][1] and s["ci"][0] < s["ci"][1]
    pairs = [(3.0, 2.0), (1.0, 2.0), (0.0, 1.0), (2.0, 5.0)]
    r = summarize_metric(pairs)
    assert r["value"] == pytest.approx(6 / 10)
    assert r["ci"][0] <= r["value"] <= r["ci"][1]
    assert summarize_metric([None, None]) is None
    assert summarize_metric([(1.0, 0.0)]) is None  # no audio at all: a rate per audio second is undefined


def test_summarize_shape():
    rows = {"asr": [{"metrics": {"wer": (1, 5), "cer": (2, 20)}}, {"metrics": {"wer": (0, 5), "cer": (0, 20)}}]}
    m = summarize(rows, skipped=[object(), object()])
    assert m["skipped_lines"] == 2
    assert m["asr"]["n"] == 2 and m["asr"]["wer"] == pytest.approx(0.1) and m["asr"]["cer"] == pytest.approx(0.05)
    assert set(m["asr"]["ci"]) == {"wer", "cer"} and m["asr"]["n_scored"] == {"wer": 2, "cer": 2}


class _Heard:
    """A stand-in scorer that always hears the same words."""

    def __init__(self, text):
        self.text = text

    def transcribe(self, wave, sample_rate):
        return self.text


def _voice(seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_speech_metrics_arithmetic(tmp_path):
    """2 s of generated audio from 10 forward passes (4 for audio) in 1.0 s end to end, 0.2 s of it
    diffusion, first span after 0.25 s; reference 2.5 s long."""
    import soundfile as sf

    sf.write(tmp_path / "ref.wav", _voice(2.5), 16000)
    result = GenerationResult("seven plus four is eleven", [[1, 2]], [], forward_passes=10,
                              audio_forward_passes=4, audio_wall_seconds=0.2, wall_seconds=0.9)
    spoken = SpokenAnswer(result.text, _voice(2.0), 16000, result, first_audio_s=0.25)
    row = Evaluator(lm=None, scorer=_Heard("seven plus four is twelve"))._speech(
        spoken, 1.0, "seven plus four is eleven", tmp_path / "ref.wav")
    m = row["metrics"]
    assert m["rtf"] == (1.0, 2.0) and summarize_metric([m["rtf"]])["value"] == pytest.approx(0.5)
    assert summarize_metric([m["forward_passes_per_audio_s"]])["value"] == pytest.approx(5.0)
    assert summarize_metric([m["audio_forward_passes_per_audio_s"]])["value"] == pytest.approx(2.0)
    assert summarize_metric([m["diffusion_s_per_audio_s"]])["value"] == pytest.approx(0.1)
    assert m["time_to_first_audio_s"] == 0.25 and m["produced_audio"] is True
    assert m["intelligibility_wer"] == (1, 5) and m["reference_wer"] == (1, 5)
    assert m["length_ratio"] == pytest.approx(0.8) and m["stop_within_20pct"] is True
    assert m["mcd_dtw_db"] >= 0 and 1.0 <= m["dnsmos_ovrl"] <= 5.0 and 1.0 <= m["dnsmos_p808"] <= 5.0
    assert row["output"] == {"text": result.text, "transcript": "seven plus four is twelve", "audio_s": 2.0}


def test_dnsmos_can_be_left_out_and_nothing_else_changes(tmp_path):
    """`ttt eval --no-dnsmos`: the DNSMOS columns are empty, every other speech metric is as with it."""
    result = GenerationResult("seven plus four is eleven", [[1, 2]], [], forward_passes=10, wall_seconds=0.9)
    spoken = SpokenAnswer(result.text, _voice(2.0), 16000, result, first_audio_s=0.25)
    scorer = _Heard("seven plus four is twelve")
    full = Evaluator(lm=None, scorer=scorer)._speech(spoken, 1.0, result.text, None)["metrics"]
    lean = Evaluator(lm=None, scorer=scorer, dnsmos=False)._speech(spoken, 1.0, result.text, None)["metrics"]
    assert full["dnsmos_ovrl"] is not None and lean["dnsmos_ovrl"] is None and lean["dnsmos_p808"] is None
    assert {k: v for k, v in lean.items() if not k.startswith("dnsmos")} == \
        {k: v for k, v in full.items() if not k.startswith("dnsmos")}


def test_silent_answer_scores_as_all_deleted():
    result = GenerationResult("hello there", [], [], forward_passes=7, wall_seconds=0.1)
    spoken = SpokenAnswer(result.text, np.zeros(0, np.float32), 16000, result)
    m = Evaluator(lm=None, scorer=_Heard("never called"))._speech(spoken, 0.1, "hello there", None)["metrics"]
    assert m["produced_audio"] is False and m["intelligibility_wer"] == (2, 2)
    assert m["dnsmos_ovrl"] is None and m["time_to_first_audio_s"] is None
    assert summarize_metric([m["rtf"]]) is None


def test_kept_audio_gets_a_safe_unique_name_and_no_file_without_audio(tmp_path):
    from ttt.eval.harness import EvalItem

    result = GenerationResult("hi", [[1, 2]], [], forward_passes=3, wall_seconds=0.1)
    evaluator = Evaluator(lm=None, audio_dir=tmp_path / "audio")
    said = SpokenAnswer("hi", _voice(0.5), 16000, result)
    item = EvalItem("tts", "data/eval.jsonl:3 a|b", "hi", "eval.jsonl", 3)
    first = evaluator._keep_audio(item, said, {"output": {}})
    again = evaluator._keep_audio(EvalItem("tts", item.id, "hi", "eval.jsonl", 9), said, {"output": {}})
    assert first["output"]["audio"] == "audio/data_eval.jsonl_3_a_b.wav"
    assert again["output"]["audio"] == "audio/data_eval.jsonl_3_a_b-line9.wav"
    silent = SpokenAnswer("hi", np.zeros(0, np.float32), 16000, result)
    assert evaluator._keep_audio(item, silent, {"output": {}}) == {"output": {}}
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == ["data_eval.jsonl_3_a_b-line9.wav",
                                                                     "data_eval.jsonl_3_a_b.wav"]
    assert Evaluator(lm=None)._keep_audio(item, said, {"output": {}}) == {"output": {}}  # no audio_dir: nothing kept


def test_asr_rows_carry_the_scorers_wer_on_the_same_audio(tmp_path):
    """The ASR bar (the field's ASR model on the very audio the model transcribed) sits in each row; the
    scorer hears each input file once even when items share it."""
    import soundfile as sf

    from ttt.eval.harness import EvalItem

    sf.write(tmp_path / "q.wav", _voice(1.0), 16000)
    heard = _Heard("what is two plus two")
    calls = []
    heard.transcribe = lambda wave, sr: calls.append(sr) or "what is two plus three"

    class _LM:
        def transcribe(self, wave, sr):
            return "what is two"

    evaluator = Evaluator(lm=_LM(), scorer=heard)
    item = EvalItem(task="asr", id="a", text="what is two plus two", file="eval.jsonl", line=1, audio=tmp_path / "q.wav")
    rows = [evaluator(item), evaluator(item)]
    assert rows[0]["metrics"] == {"wer": (2, 5), "cer": rows[0]["metrics"]["cer"], "reference_wer": (1, 5)}
    assert rows[1] == rows[0] and calls == [16000]
    assert "reference_wer" not in Evaluator(lm=_LM())(item)["metrics"]
