"""Batched `ttt eval`: ASR and text-QA items decoded in batches give the rows that one at a time gives."""

import pytest

from ttt.cli import main
from ttt.eval.harness import EvalItem, Evaluator, _groups, read_items, run
from ttt.speech import SpeechLM

from helpers import ANSWER, QUESTION

QUESTIONS = [QUESTION, "what is one plus one", "what does a cow say", "name a colour", "what is two plus five"]


@pytest.fixture
def items(eval_dir, write_jsonl):
    rows = [{"task": "asr", "id": f"a{i}", "text": QUESTION, "audio": "wavs/q.wav"} for i in range(3)]
    rows += [{"task": "text_qa", "id": f"c{i}", "text": q, "answer": ANSWER} for i, q in enumerate(QUESTIONS)]
    rows.insert(4, {"task": "tts", "id": "t1", "text": ANSWER})
    found, skipped = read_items(write_jsonl(eval_dir / "eval_batch.jsonl", rows))
    assert not skipped
    return found


def test_groups_keep_order_and_batch_only_text_tasks(items):
    groups = _groups(items, 2)
    assert [[i.id for i in g] for g in groups] == [["a0", "a1"], ["a2"], ["c0"], ["t1"], ["c1", "c2"], ["c3", "c4"]]
    assert [i for g in groups for i in g] == items
    assert [len(g) for g in _groups(items, 1)] == [1] * len(items)


def test_batched_rows_equal_one_at_a_time(items, tiny_model_dir):
    lm = SpeechLM.from_dir(tiny_model_dir, max_new_tokens=12)
    text_items = [i for i in items if i.task != "tts"]
    one = run(Evaluator(lm), text_items, [], progress=False)
    batched = run(Evaluator(lm), text_items, [], progress=False, batch_size=4)
    assert batched == one and len(one["asr"]) == 3 and len(one["text_qa"]) == 5


def test_a_failing_batch_is_retried_item_by_item(items, tiny_model_dir):
    """One bad item in a batch costs only itself: the batch is redone item by item."""
    lm = SpeechLM.from_dir(tiny_model_dir, max_new_tokens=6)
    good = [i for i in items if i.task == "text_qa"]
    bad = EvalItem(task="asr", id="bad", text="x", audio=good[0].file, file=good[0].file, line=99)
    skipped = []
    rows = run(Evaluator(lm), [*[i for i in items if i.task == "asr"], bad], skipped, progress=False, batch_size=8)
    assert [r["id"] for r in rows["asr"]] == ["a0", "a1", "a2"]
    assert len(skipped) == 1 and skipped[0].line == 99 and "asr failed" in skipped[0].reason


def test_batch_size_must_be_positive(items, tiny_model_dir, eval_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        run(Evaluator(None), items, [], progress=False, batch_size=0)
    with pytest.raises(ValueError, match="a batch holds items of one of"):
        Evaluator(None).batch(items[:5])
    rc = main(["eval", "--model", str(tiny_model_dir), "--data", str(eval_dir / "eval_batch.jsonl"),
               "--out", str(tmp_path / "r"), "--batch-size", "0", "--no-progress"])
    assert rc != 0 and "--batch-size must be at least 1, got 0" in capsys.readouterr().err
