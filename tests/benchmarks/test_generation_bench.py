"""The decoding and training-attention benchmarks: their pure parts, and (slow) the CPU smoke of the one
command the GPU check runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.generation import markdown, summary
from benchmarks.training_attention import EXAMPLES_PER_ROW, packed_row
from ttt.masks import dense_mask

ROOT = Path(__file__).resolve().parents[2]


def test_packed_rows_hold_examples_with_bidirectional_runs():
    doc, span, pos = packed_row(256, "cpu")
    assert doc.shape == span.shape == pos.shape == (1, 256)
    assert doc.unique().tolist() == list(range(EXAMPLES_PER_ROW))
    assert (pos[doc == 1][:3] == torch.arange(3)).all()
    mask = dense_mask(doc, span)[0, 0]
    first_run = (span[0] == span[0, 0]).nonzero().flatten()
    assert mask[first_run[0], first_run[-1]]  # input audio sees itself both ways
    assert not mask[doc[0] == 0][:, doc[0] == 1].any()


def test_summary_and_table():
    def mode(ms, ttfa=0.1):
        return {"ms_per_audio_token": ms, "time_to_first_audio_s": ttfa}

    row = {"ar": mode(8.0), "ttt_s2": mode(1.0), "ttt_s2_nocache": mode(2.0), "ttt_s4": mode(2.0, 0.2),
           "ttt_s4_nocache": mode(3.0)}
    s = summary(row, [2, 4])
    assert s["cache_speedup_steps2"] == 2.0 and s["ar_over_ttt_wall"] == 4.0 and s["time_to_first_audio_s"] == 0.2
    text = markdown("m", "CPU", {"fast": s, "eager": {**s, "ttt_ms_per_audio_token_steps4": 4.0}}, [2, 4])
    assert "| fast | 8.00 | 1.00 | 2.00 | 2.00× | 1.50× | 4.0× | 0.200 s |" in text
    assert "fast over eager, TtT per audio token: steps 2 1.00×, steps 4 2.00×" in text


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_step_on_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "=== generation_smoke: exit 0" in done.stdout and "=== training_attention_smoke: exit 0" in done.stdout
    assert "fast over eager, TtT per audio token" in done.stdout and "| ttt_dense |" in done.stdout
