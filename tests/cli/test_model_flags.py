"""The flags every model-running command shares (`ttt.cli.common`): --device, the decoding and sampling flags
checked before any model loads, and quiet output unless -v."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttt.cli import build_parser, main
from ttt.cli.common import DECODING_FLAGS, decoding
from ttt.speech import SpeechLM, default_model_dir

QUESTION_WAV = default_model_dir().parent / "demo" / "question.wav"  # "what is six plus three"
SRC = Path(__file__).resolve().parents[2] / "src"
# each command that runs a model, with the arguments it needs besides the flags under test
MODEL_COMMANDS = {
    "asr": [str(QUESTION_WAV)],
    "tts": ["seven plus four", "-o", "t.wav"],
    "chat": [str(QUESTION_WAV), "-o", "c.wav"],
    "demo": ["--wav", str(QUESTION_WAV), "--out", "d"],
    "eval": ["--data", "e.jsonl", "--out", "r"],
    "serve": [],
}
SAMPLING = ["--temperature", "0.7", "--top-k", "5", "--top-p", "0.9", "--threshold", "0.8",
            "--diffusion-temperature", "0.5", "--cfg-scale", "1.5", "--cfg-context", "all", "--seed", "3", "--max-new-tokens", "40"]
SAMPLED = {"temperature": 0.7, "top_k": 5, "top_p": 0.9, "threshold": 0.8, "diffusion_temperature": 0.5,
           "cfg_scale": 1.5, "cfg_context": "all", "seed": 3, "max_new_tokens": 40}


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_command_takes_device_and_the_sampling_flags(command):
    args = build_parser().parse_args([command, *MODEL_COMMANDS[command], "--device", "cuda:1", *SAMPLING])
    assert args.device == "cuda:1" and args.quiet
    assert decoding(args) == {**dict.fromkeys(DECODING_FLAGS.values()), **SAMPLED}
    defaults = build_parser().parse_args([command, *MODEL_COMMANDS[command]])
    assert defaults.device == "cpu" and set(decoding(defaults).values()) == {None}  # unset: the model's own


@pytest.fixture
def no_model_load(monkeypatch):
    """Any model load fails the test: a flag error must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the flags were checked")

    monkeypatch.setattr(SpeechLM, "from_dir", refuse)


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("flags, words", [
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["--temperature", "-1"], "--temperature must be finite and >= 0, got -1.0"),
    (["--top-k", "-2"], "--top-k must be >= 0, got -2"),
    (["--threshold", "0"], "--threshold must be in (0, 1], got 0.0"),
    (["--cfg-scale", "nan"], "--cfg-scale must be finite and >= 0, got nan"),
    (["--diffusion-temperature", "inf"], "--diffusion-temperature must be finite and >= 0, got inf"),
    (["--steps", "0"], "--steps must be positive, got 0"),
])
def test_bad_decoding_values_are_one_line_errors_before_any_model_loads(command, flags, words, no_model_load,
                                                                        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([command, *MODEL_COMMANDS[command], *flags]) == 1
    err = capsys.readouterr().err
    assert err == f"ttt {command}: error: {words}\n"
    assert not any(tmp_path.iterdir()), "nothing is written for a refused command"


def test_a_bad_flag_costs_no_torch_import():
    """The check runs before torch (or transformers) is imported: the error is immediate."""
    code = ("import sys\nfrom ttt.cli import main\n"
            f"assert main(['asr', {str(QUESTION_WAV)!r}, '--top-p', '2']) == 1\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert run.returncode == 0, run.stderr
    assert run.stderr == "ttt asr: error: --top-p must be in (0, 1], got 2.0\n"


def test_sampling_flags_reach_the_model(tiny_model_dir, eval_dir, monkeypatch, capsys):
    loaded = []
    real = SpeechLM.from_dir.__func__

    def spy(cls, *args, **kwargs):
        loaded.append(real(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(SpeechLM, "from_dir", classmethod(spy))
    assert main(["asr", str(eval_dir / "wavs" / "q.wav"), "--model", str(tiny_model_dir), "--device", "cpu",
                 *SAMPLING]) == 0
    lm, = loaded
    assert lm.generation == SAMPLED and lm.model.device.type == "cpu"
    assert capsys.readouterr().out.strip() == lm.transcribe(*_question(eval_dir))  # seeded: same text again


def _question(eval_dir):
    from ttt.audio.io import load_audio

    return load_audio(eval_dir / "wavs" / "q.wav")


@pytest.mark.parametrize("command", ["asr", "eval"])
def test_bad_device_is_a_one_line_error(command, tiny_model_dir, eval_dir, tmp_path, capsys):
    extra = {"asr": [str(eval_dir / "wavs" / "q.wav")],
             "eval": ["--data", str(_one_item(tmp_path)), "--out", str(tmp_path / "r")]}[command]
    assert main([command, *extra, "--model", str(tiny_model_dir), "--device", "gpu0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"ttt {command}: error: device 'gpu0'")


def _one_item(tmp_path: Path) -> Path:
    path = tmp_path / "e.jsonl"
    path.write_text('{"task": "text_qa", "id": "c1", "text": "what is one plus one", "answer": "it is two"}\n')
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}


def test_asr_is_quiet_by_default_and_verbose_with_v():
    """The shipped question: the transcript alone on stdout, nothing on stderr (no "Loading weights" bar,
    no INFO lines); `ttt -v` brings both back."""
    argv = [sys.executable, "-m", "ttt.cli", "asr", str(QUESTION_WAV), "--threads", "1"]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=300)
    assert quiet.returncode == 0 and quiet.stdout == "what is six plus three\n" and quiet.stderr == ""
    verbose = subprocess.run([*argv[:3], "-v", *argv[3:]], capture_output=True, text=True, env=_env(), timeout=300)
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    assert "Loading weights" in verbose.stderr and " INFO ttt." in verbose.stderr


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("flag, good, bad", [("--final-span", "official", "bidirectional"),
                                             ("--compile", "inductor", "jit")])
def test_engine_flags_are_decoding_flags(command, flag, good, bad, capsys):
    field = DECODING_FLAGS[flag]
    args = build_parser().parse_args([command, *MODEL_COMMANDS[command], flag, good])
    assert decoding(args)[field] == good
    assert decoding(build_parser().parse_args([command, *MODEL_COMMANDS[command]]))[field] is None
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *MODEL_COMMANDS[command], flag, bad])
    assert f"invalid choice: '{bad}'" in capsys.readouterr().err
