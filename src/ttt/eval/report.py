"""What `ttt eval` leaves behind: `metrics.json`, `items.jsonl` (per-item outputs), `report.md` and
PNG plots. Rendering lives apart from the harness so that a study (e.g. benchmarks/reproduce.py) can
reuse the harness and draw its own tables."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# metric -> (label, which way is better); the order is the report's row order.
LABELS = {
    "wer": ("WER", "lower"),
    "cer": ("CER", "lower"),
    "accuracy": ("answer accuracy", "higher"),
    "text_accuracy": ("text answer accuracy", "higher"),
    "audio_accuracy": ("audio answer accuracy", "higher"),
    "produced_audio": ("produced any audio", "higher"),
    "intelligibility_wer": ("scorer WER, generated speech", "lower"),
    "reference_wer": ("scorer WER, reference speech", "lower"),
    "mcd_dtw_db": ("MCD-DTW (dB)", "lower"),
    "length_ratio": ("length ratio generated/reference", "1.0"),
    "stop_within_20pct": ("stopped within ±20 %", "higher"),
    "dnsmos_ovrl": ("DNSMOS overall", "higher"),
    "dnsmos_p808": ("DNSMOS P.808", "higher"),
    "forward_passes_per_audio_s": ("forward passes / audio s", "lower"),
    "audio_forward_passes_per_audio_s": ("audio forward passes / audio s", "lower"),
    "rtf": ("real-time factor (wall s / audio s)", "lower"),
    "diffusion_s_per_audio_s": ("audio-span generation s / audio s", "lower"),
    "time_to_first_audio_s": ("time to first audio (s)", "lower"),
}
# Metrics on a shared 0..1-ish scale, drawn together per task; the rest would squash the axis.
RATE_METRICS = ("wer", "cer", "accuracy", "text_accuracy", "audio_accuracy", "produced_audio",
                "intelligibility_wer", "reference_wer", "stop_within_20pct")


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _cell(text: str) -> str:
    """Text for a markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def markdown(metrics: dict, skipped: list, config: dict, plots: set[str] = frozenset()) -> str:
    """The report: config, one table per task (value, 95% CI, items scored), plots, skipped lines."""
    lines = ["# Evaluation report", ""]
    lines += [f"- {k}: `{v}`" for k, v in config.items()]
    lines += [f"- skipped lines: {metrics['skipped_lines']}", ""]
    for task, m in metrics.items():
        if not isinstance(m, dict):
            continue
        lines += [f"## {task} ({m['n']} items)", "", "| metric | value | 95% CI | items | better |",
                  "|---|---|---|---|---|"]
        for name in [n for n in LABELS if n in m] + [n for n in m["ci"] if n not in LABELS]:
            label, better = LABELS.get(name, (name, ""))
            ci = m["ci"][name]
            interval = "–" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"
            lines.append(f"| {label} | {_fmt(m[name])} | {interval} | {m['n_scored'][name]} | {better} |")
        lines += [""] + ([f"![{task}]({task}.png)", ""] if f"{task}.png" in plots else [])
    if skipped:
        lines += ["## Skipped lines", ""] + [f"- `{s}`" for s in skipped] + [""]
    return "\n".join(lines)


def plot_task(path: Path, task: str, metrics: dict) -> bool:
    """Bars with 95% CI whiskers for the task's rate metrics; False when it has none to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in RATE_METRICS if metrics.get(n) is not None]
    if not names:
        return False
    values = [metrics[n] for n in names]
    errors = [[v - metrics["ci"][n][0] for n, v in zip(names, values)],
              [metrics["ci"][n][1] - v for n, v in zip(names, values)]]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.5))
    ax.bar(range(len(names)), values, yerr=errors, capsize=4, color="tab:blue")
    ax.set_xticks(range(len(names)), [LABELS[n][0] for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_title(f"{task} (n={metrics['n']}, 95% BCa bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_length_ratios(path: Path, ratios: list[float]) -> None:
    """Histogram of generated/reference lengths: where the model stops relative to the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(ratios, bins=20, color="tab:orange")
    for x in (0.8, 1.0, 1.2):
        ax.axvline(x, color="k", linestyle="-" if x == 1.0 else "--", linewidth=1)
    ax.set_xlabel("generated / reference length")
    ax.set_ylabel("items")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out_dir: str | Path, metrics: dict, rows: dict[str, list[dict]], skipped: list,
                 config: dict) -> Path:
    """Write metrics.json, items.jsonl, report.md and the plots into `out_dir`; returns report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = {**metrics, "config": config, "skipped": [str(s) for s in skipped]}
    (out / "metrics.json").write_text(json.dumps(full, indent=2) + "\n")
    with open(out / "items.jsonl", "w") as f:
        for task, task_rows in rows.items():
            for row in task_rows:
                f.write(json.dumps({"task": task, **row}) + "\n")
    plots = {f"{task}.png" for task, m in metrics.items()
             if isinstance(m, dict) and plot_task(out / f"{task}.png", task, m)}
    text = markdown(metrics, skipped, config, plots)
    ratios = [r["metrics"]["length_ratio"] for rs in rows.values() for r in rs if "length_ratio" in r["metrics"]]
    if ratios:
        plot_length_ratios(out / "length_ratio.png", ratios)
        text += "\n## Stop accuracy\n\n![length ratio](length_ratio.png)\n"
    heard = [(task, r) for task, rs in rows.items() for r in rs if r["output"].get("audio")]
    if heard:  # `ttt eval --save-audio`: every generated answer, to listen to next to what was scored
        text += "\n## Generated audio\n\n| item | task | text | scorer heard |\n|---|---|---|---|\n"
        text += "".join(f"| [{_cell(r['id'])}]({r['output']['audio']}) | {task} | {_cell(r['output']['text'])} | "
                        f"{_cell(r['output']['transcript'])} |\n" for task, r in heard)
    (out / "report.md").write_text(text)
    log.info("wrote %s", out / "report.md")
    return out / "report.md"
