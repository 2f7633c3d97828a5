"""Training curves of a run: total / text / audio loss (training and validation) and learning rate, drawn
from the run's `log.jsonl` (`ttt.training.run_log`) to one PNG, `RUN/curves.png` by default.

Training points are the means over each logging window (`log_interval` steps), drawn faint under a
centred moving mean; validation points are the held-out loss at each `eval_interval`; text and audio loss are on their own panels because their scales
differ by an order of magnitude. A step where the time budget stopped the run is marked.
"""
from __future__ import annotations

import json
from pathlib import Path

from ttt.training.run_log import LOG_FILE

PANELS = (("loss", "total loss"), ("text_loss", "text loss (next token)"),
          ("audio_loss", "audio loss (masked codes)"))
CURVES_FILE = "curves.png"
SMOOTH_FROM = 20  # points: longer training curves get a smoothed line (the masked-code loss is noisy)


def read_log(path: str | Path) -> list[dict]:
    """The records of a `log.jsonl`; a line that is not a JSON object with an integer "step" is an error
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a `ttt train` run folder has one)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f"{path}:{number}: expected an object with an integer \"step\"")
        records.append(record)
    if not any("loss" in r for r in records):
        raise ValueError(f"{path}: no training-loss record yet (the first comes after log_interval steps)")
    return records


def _smooth(values: list[float]) -> tuple[list[float], int]:
    """Centred moving mean (window shrinks at the ends), so that a steep descent is not drawn late as an
    exponential average would; the window is about 1/8 of the points, odd, at least 5."""
    half = max(5, len(values) // 8) // 2
    out = [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
           for i in range(len(values))]
    return out, 2 * half + 1


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], float(r[key])) for r in records if isinstance(r.get(key), (int, float))]
    return [s for s, _ in points], [v for _, v in points]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw `run_dir/log.jsonl` to `out` (default `run_dir/curves.png`); returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_log(run_dir / LOG_FILE)
    out = Path(out) if out else run_dir / CURVES_FILE
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for ax, (key, title) in zip(axes.flat, PANELS):
        steps, values = _series(records, key)
        if len(values) >= SMOOTH_FROM:
            ax.plot(steps, values, color="tab:blue", lw=0.8, alpha=0.35, label="training (window mean)")
            smooth, window = _smooth(values)
            ax.plot(steps, smooth, color="tab:blue", lw=1.6, label=f"training, centred mean of {window}")
        else:
            ax.plot(steps, values, color="tab:blue", lw=1.2, label="training (window mean)")
        v_steps, v_values = _series(records, f"valid_{key}")
        if v_steps:
            ax.plot(v_steps, v_values, color="tab:orange", lw=1.2, marker="o", ms=3.5, label="validation")
            best = min(range(len(v_values)), key=v_values.__getitem__)
            ax.annotate(f"best {v_values[best]:.3g} @ {v_steps[best]}", (v_steps[best], v_values[best]),
                        textcoords="offset points", xytext=(0, 10), ha="center", fontsize=8, color="tab:orange")
        if values and min(values + v_values) > 0 and max(values + v_values) / min(values + v_values) > 20:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel("cross-entropy (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes.flat[3]
    steps, lrs = _series(records, "lr")
    ax.plot(steps, lrs, color="tab:green", lw=1.2)
    ax.set_title("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    stops = [r for r in records if "stopped" in r]
    for ax in axes.flat:
        for stop in stops:
            ax.axvline(stop["step"], color="grey", ls="--", lw=0.8)
    for ax in axes[1]:
        ax.set_xlabel("step")
    last = max(r["step"] for r in records)
    note = f", stopped by {stops[-1]['stopped']}" if stops else ""
    fig.suptitle(f"{run_dir.resolve().name}: {last} steps{note}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
