"""Bad command lines fail in one line, before any work: flags, outputs and inputs are checked before the
model loads. `--model` points at a folder that does not exist, so an error about anything else proves
that it was found before the model was even looked at."""
import json

import pytest

from helpers import ANSWER, QUESTION
from ttt.cli import main


def _error(capsys) -> str:
    """The one error line of a failed command (progress bars and logging aside), and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def nomodel(tmp_path):
    return ["--model", str(tmp_path / "no-model-here")]


def test_an_existing_file_as_eval_out_is_refused_before_the_evaluation(tmp_path, nomodel, capsys):
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"task": "text_qa", "id": "c1", "text": QUESTION, "answer": ANSWER}) + "\n")
    taken = tmp_path / "report"
    taken.write_text("not a folder")
    assert main(["eval", "--data", str(data), "--out", str(taken), *nomodel]) == 1
    assert f"--out {taken}: exists and is a file" in _error(capsys)


@pytest.mark.parametrize("command", ["tts", "chat"])
def test_a_directory_or_unknown_format_as_output_is_refused_before_generation(command, eval_dir, tmp_path, nomodel, capsys):
    first = "seven plus four" if command == "tts" else str(eval_dir / "wavs" / "q.wav")
    assert main([command, first, "-o", str(tmp_path), *nomodel]) == 1
    assert f"-o {tmp_path}: is a directory" in _error(capsys)
    assert main([command, first, "-o", str(tmp_path / "x.xyz"), *nomodel]) == 1
    assert "unsupported audio format '.xyz'" in _error(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([command, first, "-o", str(blocker / "sub" / "a.wav"), *nomodel]) == 1
    assert "is a file, not a folder" in _error(capsys)


def test_demo_out_that_is_a_file_is_refused(tmp_path, nomodel, capsys):
    taken = tmp_path / "demo_out"
    taken.write_text("")
    assert main(["demo", "--out", str(taken), "--no-score", *nomodel]) == 1
    assert f"--out {taken}: exists and is a file" in _error(capsys)


def test_a_failed_demo_leaves_no_previous_answer_beside_the_new_question(tmp_path, eval_dir, nomodel, capsys):
    out = tmp_path / "demo_out"
    out.mkdir()
    for name in ("question.wav", "answer.wav"):
        (out / name).write_bytes((eval_dir / "wavs" / "a.wav").read_bytes())
    (out / "answer.txt").write_text("the previous answer\n")
    rc = main(["demo", "--wav", str(eval_dir / "wavs" / "q.wav"), "--out", str(out), "--no-score", *nomodel])
    assert rc == 1 and "no TtT model" in _error(capsys)
    assert (out / "question.wav").read_bytes() != (eval_dir / "wavs" / "a.wav").read_bytes(), "the new question"
    assert not (out / "answer.txt").exists() and not (out / "answer.wav").exists()


def test_a_demo_whose_question_cannot_be_read_keeps_the_previous_pair(tmp_path, nomodel, capsys):
    out = tmp_path / "demo_out"
    out.mkdir()
    (out / "answer.txt").write_text("the previous answer\n")
    assert main(["demo", "--wav", str(tmp_path / "missing.wav"), "--out", str(out), *nomodel]) == 1
    assert "missing.wav" in _error(capsys)
    assert (out / "answer.txt").read_text() == "the previous answer\n"


@pytest.mark.parametrize("argv, message", [
    (["tts", "", "-o", "e.wav"], "nothing to speak: the text is empty"),
    (["tts", "   ", "-o", "e.wav"], "nothing to speak: the text is empty"),
    (["demo", "--say", ""], "--say: the question is empty"),
])
def test_empty_text_is_an_error(argv, message, nomodel, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, *nomodel]) == 1
    assert message in _error(capsys)


@pytest.mark.parametrize("flags, message", [
    (["--threads", "-1"], "--threads must be at least 1, got -1"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--steps", "-3"], "--steps must be positive, got -3"),
    (["--block-length", "0"], "--block-length must be positive, got 0"),
    (["--stop-threshold", "2"], "--stop-threshold must be in (0, 1], got 2.0"),
    (["--max-last-span", "0"], "--max-last-span: max_new_tokens and max_last_span must be positive"),
    (["--nar-length", "-2"], "--nar-length must be positive, got -2"),
])
@pytest.mark.parametrize("command", ["asr", "tts", "chat", "demo", "eval"])
def test_bad_flags_are_refused_before_the_model_loads(command, flags, message, eval_dir, tmp_path, nomodel, capsys):
    wav = str(eval_dir / "wavs" / "q.wav")
    argv = {"asr": ["asr", wav], "tts": ["tts", "seven", "-o", str(tmp_path / "t.wav")],
            "chat": ["chat", wav, "-o", str(tmp_path / "c.wav")],
            "demo": ["demo", "--wav", wav, "--out", str(tmp_path / "d"), "--no-score"],
            "eval": ["eval", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]}[command]
    assert main([*argv, *flags, *nomodel]) == 1
    assert message in _error(capsys)
    assert not (tmp_path / "d").exists(), "the demo wrote nothing"


def test_eval_data_that_is_a_directory_says_so(tmp_path, nomodel, capsys):
    assert main(["eval", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *nomodel]) == 1
    assert f"{tmp_path}: is a directory; give an eval JSONL file" in _error(capsys)


@pytest.mark.parametrize("content, message", [
    ("", "no evaluation items: the file is empty"),
    ("\n\n", "no evaluation items: the file is empty"),
    ('{"task": "nope"}\nnot json\n', "no evaluation items: all 2 lines are malformed"),
])
def test_eval_on_an_empty_or_all_malformed_file_fails(tmp_path, nomodel, capsys, content, message):
    data = tmp_path / "eval.jsonl"
    data.write_text(content)
    assert main(["eval", "--data", str(data), "--out", str(tmp_path / "r"), *nomodel]) == 1
    assert message in _error(capsys)
    assert not (tmp_path / "r" / "metrics.json").exists()
