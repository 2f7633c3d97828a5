"""`ttt serve` from the command line: its flags, its one-line errors, and a real start on a free port."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttt.cli import build_parser, main

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'text-to-talk[serve]'")
import httpx  # noqa: E402


def test_serve_is_a_ttt_command_with_its_flags():
    args = build_parser().parse_args(["serve", "--port", "9000", "--device", "cpu", "--steps", "2"])
    assert args.command == "serve" and args.port == 9000 and args.host == "127.0.0.1" and args.steps == 2
    assert args.max_history_turns == 0 and callable(args.func)


@pytest.mark.parametrize("argv, words", [
    (["--port", "70000"], "--port must be in 1..65535"),
    (["--max-upload-mb", "0"], "must be positive"),
    (["--model", "/nonexistent/model"], "no TtT model in /nonexistent/model"),
    (["--device", "gpu0"], "device 'gpu0'"),
])
def test_bad_flags_are_one_line_errors(argv, words, capsys):
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ttt serve: error:") and words in err and "Traceback" not in err


def test_ttt_serve_starts_and_answers_health(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "ttt.cli", "serve", "--port", str(port), "--threads", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert health == {"status": "ok", "sessions": 0, "busy": False, "turns_served": 0}, output
        assert f"talk at http://127.0.0.1:{port}/" in output
        assert "talk to the model" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
