"""Unseen-speaker eval set: same items and answers, new question audio by the unseen voices, bad lines named."""
import json

import pytest
import soundfile as sf

from benchmarks.unseen_voices import main
from ttt.corpus.voices import UNSEEN_VOICES


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_revoices_spoken_questions_and_keeps_answers(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.wav").write_bytes(b"unused")  # the original question audio is replaced, never read
    rows = [
        {"task": "spoken_qa", "text": "what is two plus three", "audio": "a.wav",
         "answer": "two plus three is five", "answer_audio": "answer.wav"},
        {"task": "tts", "text": "two plus three is five"},
        {"task": "asr", "text": "what day comes after monday", "audio": "a.wav"},
        {"task": "spoken_qa", "text": "what is the capital of peru", "audio": "a.wav", "answer": "lima"},
    ]
    _write(src / "eval.jsonl", rows)
    out = tmp_path / "out"
    assert main(["--data", str(src / "eval.jsonl"), "--out", str(out), "--tasks", "spoken_qa,asr"]) == 0
    written = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [r["text"] for r in written] == [rows[0]["text"], rows[2]["text"], rows[3]["text"]]
    assert [r["voice"] for r in written] == list(UNSEEN_VOICES)[:3]
    assert written[0]["answer"] == rows[0]["answer"]
    assert (out / written[0]["answer_audio"]).resolve() == (src / "answer.wav").resolve()
    for r in written:
        info = sf.info(out / r["audio"])
        assert info.samplerate == 16000 and 0.8 < info.duration < 4.0


def test_names_the_bad_line(tmp_path):
    (tmp_path / "eval.jsonl").write_text('{"task": "asr", "text": "hi", "audio": "a.wav"}\n{oops\n')
    with pytest.raises(ValueError, match=r"eval.jsonl:2"):
        main(["--data", str(tmp_path / "eval.jsonl"), "--out", str(tmp_path / "out")])
