"""Held-out facts: selection keeps exactly the held-out QA items, the report counts answers and facts."""
import json

import pytest

from benchmarks.heldout_facts import main

HELD = ["plus:2:2", "capital:peru"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "corpus_card.json").write_text(json.dumps({"heldout_keys": {"valid": HELD, "test": []}}))
    return folder


def _eval_rows():
    return [
        {"task": "spoken_qa", "text": "what is two plus two", "audio": "q0.wav",
         "answer": "two plus two is four", "answer_audio": "a0.wav"},
        {"task": "spoken_qa", "text": "what is one plus one", "audio": "q1.wav", "answer": "one plus one is two"},
        {"task": "text_chat", "text": "what is the capital of peru", "answer": "the capital of peru is lima"},
        {"task": "tts", "text": "two plus two is four"},
        {"task": "asr", "text": "what is two plus two", "audio": "q0.wav"},
    ]


def test_select_keeps_held_out_questions_and_rebases_audio(tmp_path, corpus):
    data = tmp_path / "data" / "eval.jsonl"
    data.parent.mkdir()
    _write(data, _eval_rows())
    out = tmp_path / "elsewhere" / "held.jsonl"
    assert main(["--corpus", str(corpus), "select", "--data", str(data), "--out", str(out)]) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in kept] == ["what is two plus two", "what is the capital of peru"]
    assert (out.parent / kept[0]["audio"]).resolve() == (data.parent / "q0.wav").resolve()
    assert (out.parent / kept[0]["answer_audio"]).resolve() == (data.parent / "a0.wav").resolve()


def test_report_splits_seen_and_held_out(tmp_path, corpus, capsys):
    data = tmp_path / "eval.jsonl"
    _write(data, _eval_rows())
    items = [
        {"task": "spoken_qa", "source": f"{data}:1", "metrics": {"text_accuracy": True}},
        {"task": "spoken_qa", "source": f"{data}:1", "metrics": {"text_accuracy": False}},
        {"task": "spoken_qa", "source": f"{data}:1", "metrics": {"text_accuracy": False}},
        {"task": "spoken_qa", "source": f"{data}:2", "metrics": {"text_accuracy": True}},
        {"task": "text_qa", "source": f"{data}:3", "metrics": {"accuracy": True}},
        {"task": "tts", "source": f"{data}:4", "metrics": {}},
    ]
    _write(tmp_path / "items.jsonl", items)
    assert main(["--corpus", str(corpus), "report", str(tmp_path / "items.jsonl"), "--per-fact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "spoken_qa held-out accuracy 0.333 over 3 answers; 0 of 1 facts known" in lines
    assert "plus:2:2=1/3" in lines[lines.index(
        "spoken_qa held-out accuracy 0.333 over 3 answers; 0 of 1 facts known") + 1]
    assert "spoken_qa seen     accuracy 1.000 over 1 answers; 1 of 1 facts known" in lines
    assert "text_qa   held-out accuracy 1.000 over 1 answers; 1 of 1 facts known" in lines


def test_errors_name_the_problem(tmp_path, corpus, capsys):
    bad = tmp_path / "eval.jsonl"
    bad.write_text('{"task": "asr"}\n{oops\n')
    assert main(["--corpus", str(corpus), "select", "--data", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "eval.jsonl:2" in capsys.readouterr().err
    (corpus / "corpus_card.json").write_text(json.dumps({"heldout_keys": {"valid": HELD}}))
    assert main(["--corpus", str(corpus), "--split", "test", "report", str(bad)]) == 1
    assert "no held-out keys for split 'test'" in capsys.readouterr().err
