"""Data parallelism: 2 CPU processes (gloo, via torchrun + accelerate) match 1 process on the same global batch.

One process with grad_accum=2 and two processes with grad_accum=1 see the same global batch of 4, cut
into the same micro-batches with the same noise, so losses and weights must agree up to the float
reassociation of the gradient all-reduce.
"""
import os
import socket
import subprocess
import sys

import yaml
from safetensors.torch import load_file

from train_toy import read_log, toy_config
from ttt.training.loop import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    settings = dict(max_steps=4, batch_size=2, eval_interval=2, save_interval=4, eval_batch_size=3,
                    **{"backbone.layers": 1})
    single = toy_config(tmp_path / "one", grad_accum=2, **settings)
    train(single)
    double = toy_config(tmp_path / "two", grad_accum=1, **settings)
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(double.to_dict()))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "ttt.cli.train", "--config", str(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es), global batch 4" in proc.stderr
    one, two = read_log(tmp_path / "one" / "run"), read_log(tmp_path / "two" / "run")
    assert [sorted(r) for r in one] == [sorted(r) for r in two]
    for a, b in zip(one, two):
        for key in a:
            if key not in ("tokens_per_s", "step", "epoch"):
                assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), (a["step"], key, a[key], b[key])
    wa = load_file(tmp_path / "one" / "run" / "final" / "model.safetensors")
    wb = load_file(tmp_path / "two" / "run" / "final" / "model.safetensors")
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert diff < 1e-5, diff
