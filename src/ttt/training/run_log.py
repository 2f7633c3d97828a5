"""Run logging through accelerate's tracker interface: `OUT/log.jsonl` always, TensorBoard when installed.

`ttt train` calls `Accelerator.log(values, step=...)`; every tracker in `trackers(out_dir)` receives it on
the main process. `JSONLTracker` is the record the project's tools read (`ttt report-run`, benchmarks,
tests): one JSON object per call, `{"step": N, ...values}`, also echoed as one console line. TensorBoard
(`pip install tensorboard`, or `.[tensorboard]`) is added when importable and writes `OUT/tensorboard/`;
it is not a dependency.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker
from accelerate.utils import is_tensorboard_available

log = logging.getLogger("ttt.train")

LOG_FILE = "log.jsonl"
PROJECT = "tensorboard"  # accelerate's run name: TensorBoard writes OUT/tensorboard/


class JSONLTracker(GeneralTracker):
    """Appends each logged record to `OUT/log.jsonl` and prints it as one console line."""

    name = "jsonl"
    requires_logging_directory = False

    def __init__(self, out_dir: str | Path) -> None:
        super().__init__()
        self.path = Path(out_dir) / LOG_FILE

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        """Nothing: the run's configuration is `OUT/config.yaml`, written by `ttt train` itself."""

    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        record = {"step": step, **values}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("step %s %s", step, " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))


def trackers(out_dir: str | Path) -> list:
    """`log_with` for `Accelerator`: the JSONL record, plus "tensorboard" when it can be imported."""
    chosen: list = [JSONLTracker(out_dir)]
    if is_tensorboard_available():
        chosen.append("tensorboard")
    else:
        log.debug("tensorboard not installed; logging to the console and %s only", LOG_FILE)
    return chosen


def keep_log_until(out_dir: str | Path, resume_step: int | None) -> None:
    """Start `log.jsonl` afresh (a new run), or drop what a crashed run logged after the checkpoint it
    resumes from (`resume_step`), so that each step appears once."""
    path = Path(out_dir) / LOG_FILE
    if resume_step is None:
        path.unlink(missing_ok=True)
    elif path.is_file():
        kept = [line for line, record in _records(path) if record.get("step", 0) <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))


def _records(path: Path) -> list[tuple[str, dict]]:
    """(line, record) of a log; a torn last line (the run was killed mid-write) is dropped with a warning,
    a damaged line before it is an error naming the file and line."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append((line, json.loads(line)))
        except json.JSONDecodeError as err:
            if n < len(lines):
                raise ValueError(f"{path}:{n}: damaged log line ({err.msg}); fix or remove it to resume") from None
            log.warning("%s:%d: dropping a torn last line (the run stopped while writing it): %.60r", path, n, line)
    return records


def hparams(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested run config flattened to the scalar `{"optim.lr": 0.001, ...}` TensorBoard's hparams take."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat
