"""The study's job runner: order, slots, skipping finished stages, failures, and the deadline."""
import sys
import time
from pathlib import Path

import pytest

from benchmarks.jobs import Job, run_jobs


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_jobs_run_in_dependency_order_within_the_slots(tmp_path):
    stamp = tmp_path / "order.txt"
    write = "import sys, time; time.sleep(0.3); open({!r}, 'a').write(sys.argv[1] + '\\n')".format(str(stamp))
    jobs = [Job(n, [*py(write), n], tmp_path / f"{n}.log", after=after)
            for n, after in (("a", ()), ("b", ("a",)), ("c", ()), ("d", ("b", "c")))]
    finished = []
    for j in jobs:
        j.finish = lambda s, n=j.name: finished.append(n)
    out = run_jobs(jobs, slots=2, poll_s=0.05)
    assert out.status == dict.fromkeys("abcd", "ok")
    order = stamp.read_text().split()
    assert order.index("a") < order.index("b") < order.index("d") and order.index("c") < order.index("d")
    assert sorted(finished) == list("abcd")
    assert "$ " in (tmp_path / "a.log").read_text(), "each log names its command"


def test_finished_jobs_are_skipped_and_failures_block_only_their_dependents(tmp_path):
    jobs = [Job("old", py("raise SystemExit(3)"), tmp_path / "old.log", done=lambda: True),
            Job("bad", py("raise SystemExit(2)"), tmp_path / "bad.log"),
            Job("after-bad", py("pass"), tmp_path / "x.log", after=("bad",)),
            Job("after-old", py("pass"), tmp_path / "y.log", after=("old",))]
    out = run_jobs(jobs, slots=4, poll_s=0.05)
    assert out.status == {"old": "done", "bad": "failed", "after-bad": "blocked", "after-old": "ok"}


def test_the_deadline_stops_running_jobs_and_starts_no_more(tmp_path):
    jobs = [Job("slow", py("import time; time.sleep(60)"), tmp_path / "s.log"),
            Job("next", py("pass"), tmp_path / "n.log", after=("slow",)),
            Job("queued", py("pass"), tmp_path / "q.log")]
    start = time.monotonic()
    out = run_jobs(jobs, slots=1, deadline=start + 1.0, grace_s=2.0, poll_s=0.05)
    assert time.monotonic() - start < 15
    assert out.status == {"slow": "stopped", "next": "not started", "queued": "not started"}


def test_a_job_that_would_not_end_before_the_deadline_leaves_its_slot_to_the_next(tmp_path):
    jobs = [Job("long-eval", py("pass"), tmp_path / "e.log", expected_s=600.0),
            Job("after-eval", py("pass"), tmp_path / "a.log", after=("long-eval",)),
            Job("short-eval", py("pass"), tmp_path / "s.log", expected_s=0.1),
            Job("train", py("pass"), tmp_path / "t.log")]
    out = run_jobs(jobs, slots=1, deadline=time.monotonic() + 30.0, poll_s=0.05)
    assert out.status == {"long-eval": "not started", "after-eval": "blocked", "short-eval": "ok", "train": "ok"}
    assert not (tmp_path / "e.log").exists(), "a declined job is not started"
    out = run_jobs([Job("long-eval", py("pass"), tmp_path / "e.log", expected_s=600.0)], slots=1, poll_s=0.05)
    assert out.status == {"long-eval": "ok"}, "without a deadline every job runs"


def test_bad_job_lists_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown jobs"):
        run_jobs([Job("a", py("pass"), tmp_path / "a.log", after=("zzz",))], slots=1)
    with pytest.raises(ValueError, match="unique"):
        run_jobs([Job("a", py("pass"), tmp_path / "a.log")] * 2, slots=1)
    with pytest.raises(ValueError, match="at least one job slot"):
        run_jobs([], slots=0)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_terminated_runner_stops_its_jobs(tmp_path, signal_name):
    """Jobs run in sessions of their own; a runner that is killed must not leave them running (a rerun
    would start the same training a second time)."""
    import os
    import signal
    import subprocess

    pid_file = tmp_path / "job.pid"
    # a shell that starts pytest in the background leaves SIGINT ignored, and children inherit that;
    # the runner here gets Python's own SIGINT handler back, as under a terminal's Ctrl-C
    runner = f"""
import logging, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from benchmarks.jobs import Job, run_jobs
job = Job("slow", [sys.executable, "-c", "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"],
          Path({str(tmp_path / "slow.log")!r}))
run_jobs([job], slots=1, grace_s=5.0, poll_s=0.05)
"""
    proc = subprocess.Popen([sys.executable, "-c", runner])
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, "the job did not start"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.send_signal(getattr(signal, signal_name))
    assert proc.wait(timeout=30) != 0
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the job outlived its runner after {signal_name}")
