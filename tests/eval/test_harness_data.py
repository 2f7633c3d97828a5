"""Malformed eval lines are reported with file:line, counted, and skipped; the run goes on."""
import logging

import pytest

from ttt.eval.harness import EvalItem, Skipped, read_items, run, select, summarize

from helpers import ANSWER, QUESTION


def test_malformed_lines_are_reported_and_skipped(eval_dir, write_jsonl, caplog, tmp_path):
    (eval_dir / "wavs" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    rows = [
        {"task": "asr", "id": "ok1", "text": QUESTION, "audio": "wavs/q.wav"},      # 1
        "{not json",                                                                # 2
        "[1, 2]",                                                                   # 3
        {"task": "asr", "id": "x", "audio": "wavs/q.wav"},                          # 4 no text
        {"task": "translate", "id": "x", "text": "hola"},                           # 5 unknown task
        {"task": "asr", "id": "x", "text": QUESTION, "audio": "wavs/missing.wav"},  # 6
        {"task": "asr", "id": "x", "text": QUESTION, "audio": "wavs/broken.wav"},   # 7 unreadable
        {"task": "spoken_qa", "id": "x", "text": QUESTION, "audio": "wavs/q.wav"},  # 8 no answer
        {"task": "text_qa", "id": "x", "text": QUESTION, "answer": "it is"},        # 9 no fact
        {"task": "asr", "id": "x", "text": "?!", "audio": "wavs/q.wav"},            # 10 empty text
        "",                                                                         # 11 blank: ignored
        {"task": "text_qa", "id": "ok2", "text": QUESTION, "answer": ANSWER},       # 12
        {"task": "tts", "text": ANSWER},                                            # 13 no id, no audio: ok
    ]
    path = write_jsonl(eval_dir / "mixed.jsonl", rows)
    with open(path, "ab") as f:
        f.write(b'{"task": "asr", "text": "caf\xe9"}\n')                                 # 14 not UTF-8
    with caplog.at_level(logging.WARNING, logger="ttt.eval.harness"):
        items, skipped = read_items(path)
    assert [i.id for i in items] == ["ok1", "ok2", f"{path}:13"]
    assert items[0].audio == eval_dir / "wavs" / "q.wav"  # relative to the data file
    assert [s.line for s in skipped] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 14]
    reasons = {s.line: s.reason for s in skipped}
    assert "malformed JSON" in reasons[2] and "JSON object" in reasons[3]
    assert "'text'" in reasons[4] and "unknown task 'translate'" in reasons[5]
    assert "no such audio file" in reasons[6] and "unreadable" in reasons[7]
    assert "'answer'" in reasons[8] and "states no fact" in reasons[9] and "empty after" in reasons[10]
    assert "UTF-8" in reasons[14]
    assert all(s.file == str(path) for s in skipped)
    assert f"{path}:2: malformed JSON" in caplog.text and f"{path}:7:" in caplog.text


def test_answer_audio_is_read_for_spoken_qa_only(eval_dir, write_jsonl):
    path = write_jsonl(eval_dir / "answers.jsonl", [
        {"task": "spoken_qa", "text": QUESTION, "audio": "wavs/q.wav", "answer": ANSWER, "answer_audio": "wavs/a.wav"},
        {"task": "spoken_qa", "text": QUESTION, "audio": "wavs/q.wav", "answer": ANSWER, "answer_audio": "wavs/no.wav"},
        {"task": "tts", "text": ANSWER, "answer_audio": "wavs/a.wav"},
    ])
    items, skipped = read_items(path)
    assert [i.answer_audio for i in items] == [eval_dir / "wavs" / "a.wav"]
    assert [s.line for s in skipped] == [2, 3]
    assert skipped[0].reason.startswith("answer_audio: ") and "no such audio file" in skipped[0].reason
    assert "spoken_qa items only" in skipped[1].reason


def test_an_item_the_model_rejects_is_skipped_and_the_run_continues(eval_dir, write_jsonl):
    path = write_jsonl(eval_dir / "two.jsonl", [{"task": "text_qa", "id": f"q{i}", "text": QUESTION,
                                                 "answer": ANSWER} for i in range(3)])
    items, skipped = read_items(path)

    def evaluator(item):
        if item.id == "q1":
            raise ValueError("prompt too long")
        return {"output": {}, "metrics": {"accuracy": True}}

    rows = run(evaluator, items, skipped, progress=False)
    assert [r["id"] for r in rows["text_qa"]] == ["q0", "q2"]
    assert [str(s) for s in skipped] == [f"{path}:2: text_qa failed: prompt too long"]
    assert summarize(rows, skipped)["skipped_lines"] == 1


def test_skipped_names_file_and_line():
    assert str(Skipped("data/eval.jsonl", 7, "malformed JSON")) == "data/eval.jsonl:7: malformed JSON"


def test_select_takes_the_first_items_of_each_task_in_file_order():
    tasks = ["asr", "asr", "asr", "tts", "tts", "text_qa", "asr"]
    items = [EvalItem(task, f"i{n}", "x", "f.jsonl", n + 1) for n, task in enumerate(tasks)]
    assert [i.id for i in select(items, per_task=2)] == ["i0", "i1", "i3", "i4", "i5"]
    assert [i.id for i in select(items, limit=2, per_task=1)] == ["i0", "i3"]
    assert select(items) == items
    with pytest.raises(ValueError, match="per_task must be positive"):
        select(items, per_task=0)
