"""The `ttt` command as a whole: cheap to start, one error handler for every command, standalone modules."""
import subprocess
import sys

from ttt.cli import main
from ttt.cli.common import USER_ERRORS


def test_help_loads_no_torch():
    code = "import sys\nfrom ttt.cli import build_parser\nbuild_parser()\nassert 'torch' not in sys.modules, 'torch'\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_group_is_registered(capsys):
    assert main([]) == 2
    listed = capsys.readouterr().out
    for command in ("data", "codec", "train", "demo", "asr", "tts", "chat", "eval", "export", "grow"):
        assert command in listed


def test_user_error_is_one_line_and_status_1(tmp_path, capsys):
    assert ValueError in USER_ERRORS
    assert main(["grow", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ttt grow: error:") and "missing" in err[0]


def test_train_module_runs_standalone_with_the_same_handler(tmp_path):
    """`python -m ttt.cli.train` (the form `accelerate launch -m` needs) reports bad input the same way."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_key: 1\n")
    run = subprocess.run([sys.executable, "-m", "ttt.cli.train", "--config", str(bad)], capture_output=True, text=True)
    lines = [l for l in run.stderr.splitlines() if l.startswith("ttt train")]
    assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("ttt train: error:"), run.stderr


def test_python_dash_m_ttt_cli(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ttt.cli", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "text-to-talk" in run.stdout
