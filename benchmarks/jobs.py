"""Run a study's commands as parallel subprocesses: dependencies, a slot limit, a deadline, one log per job.

A study (e.g. `benchmarks/reproduce.py`) is many small runs — train, then evaluate — that fit side by side
on one machine (16 CPU cores, or one GPU shared by many tiny models). `run_jobs` keeps `slots` of them
running, starts a job once the jobs it waits for have succeeded, skips a job whose stage is already done
(resumability lives in each job's `done` check), and at the `deadline` starts nothing new and stops the
running ones (SIGTERM, then SIGKILL after `grace_s`), so a command under a wall-clock limit ends on time and
the next call resumes. A job that cannot resume (an evaluation starts over) may say how long it takes
(`expected_s`): it is not started when it would not end before the deadline, so its slot goes to a job
whose work survives the stop instead of to work that would be thrown away. A failed job fails only the
jobs that wait for it. Jobs run in sessions of their own (a terminal's signals do not reach them), so the
runner itself stops them when it is interrupted or sent SIGTERM: no training is left running unsupervised
for the next call to start a second time.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("jobs")


@dataclass
class Job:
    """One command. `done()` says its result already exists (then it is not run); `after` names jobs that must
    succeed first; `prepare()` runs just before the start and `finish()` after a success (e.g. to move a
    finished output into place)."""

    name: str
    command: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    done: Callable[[], bool] = lambda: False
    prepare: Callable[[], None] | None = None
    finish: Callable[[float], None] | None = None  # called with the job's wall seconds
    expected_s: float | None = None  # how long it runs, for a job that starts over when stopped


@dataclass
class Outcome:
    """What happened to each job: "done" (before this call), "ok", "failed", "blocked" (a job it waits for
    did not succeed), "stopped" (at the deadline) or "not started" (the deadline came first)."""

    status: dict[str, str]

    def count(self, status: str) -> int:
        return sum(1 for s in self.status.values() if s == status)


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the job's process group, SIGKILL it if it has not ended after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_jobs(jobs: list[Job], slots: int, deadline: float | None = None, grace_s: float = 20.0,
             poll_s: float = 0.5) -> Outcome:
    """Run `jobs` (in list order, as dependencies allow) with at most `slots` at once until all have ended
    or `deadline` (a `time.monotonic()` value) has passed."""
    if slots < 1:
        raise ValueError(f"need at least one job slot, got {slots}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError("job names must be unique")
    known = set(names)
    for j in jobs:
        missing = [a for a in j.after if a not in known]
        if missing:
            raise ValueError(f"job {j.name} waits for unknown jobs {missing}")
    status: dict[str, str] = {}
    for j in jobs:
        if j.done():
            status[j.name] = "done"
    pending = [j for j in jobs if j.name not in status]
    running: dict[str, tuple[Job, subprocess.Popen, float, object]] = {}
    with _stopping_on_exit(running, grace_s):
        _loop(pending, running, status, slots, deadline, grace_s, poll_s)
    return Outcome(status)


class _Terminated(Exception):
    """SIGTERM reached the runner."""


@contextmanager
def _stopping_on_exit(running: dict, grace_s: float):
    """Stop every running job if the loop ends by an exception (Ctrl-C, SIGTERM: raised as one here while
    the loop runs, in the main thread), then re-raise; SIGTERM becomes SystemExit(143)."""
    def terminated(signum, frame):
        raise _Terminated()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminated) if main else None
    try:
        yield
    except BaseException as err:
        if main:  # a second SIGTERM must not cut the cleanup short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, (job, proc, start, handle) in running.items():
            log.warning("%s: stopped, the runner was interrupted (it resumes on the next call)", name)
            _stop(proc, grace_s)
            handle.close()
        running.clear()
        if isinstance(err, _Terminated):
            raise SystemExit(143) from None
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _loop(pending: list[Job], running: dict, status: dict[str, str], slots: int, deadline: float | None,
          grace_s: float, poll_s: float) -> None:
    while pending or running:
        for name, (job, proc, start, handle) in list(running.items()):
            if proc.poll() is None:
                continue
            handle.close()
            del running[name]
            seconds = time.monotonic() - start
            if proc.returncode == 0:
                if job.finish is not None:
                    job.finish(seconds)
                status[name] = "ok"
                log.info("%s: done in %.0f s", name, seconds)
            else:
                status[name] = "failed"
                log.error("%s: exit %d after %.0f s (log: %s)", name, proc.returncode, seconds, job.log_file)
        late = deadline is not None and time.monotonic() >= deadline
        if late:
            for name, (job, proc, start, handle) in running.items():
                log.warning("%s: stopped at the deadline (it resumes on the next call)", name)
                _stop(proc, grace_s)
                handle.close()
                status[name] = "stopped"
            running.clear()
            for job in pending:
                status[job.name] = "not started"
            break
        for job in list(pending):
            waits = [status.get(a) for a in job.after]
            if any(s in ("failed", "blocked", "stopped", "not started") for s in waits):
                status[job.name] = "blocked"
                pending.remove(job)
                continue
            if len(running) >= slots or not all(s in ("done", "ok") for s in waits):
                continue
            pending.remove(job)
            left = None if deadline is None else deadline - time.monotonic()
            if job.expected_s is not None and left is not None and job.expected_s > left:
                status[job.name] = "not started"
                log.info("%s: not started, it takes about %.0f s and %.0f s are left", job.name, job.expected_s,
                         left)
                continue
            if job.prepare is not None:
                job.prepare()
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = open(job.log_file, "a")
            handle.write(f"\n$ {' '.join(job.command)}\n")
            handle.flush()
            proc = subprocess.Popen(job.command, stdout=handle, stderr=subprocess.STDOUT,
                                    env={**os.environ, **job.env}, start_new_session=True)
            running[job.name] = (job, proc, time.monotonic(), handle)
            log.info("%s: started (%d running)", job.name, len(running))
        if running:
            time.sleep(poll_s)
