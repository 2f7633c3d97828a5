"""The paper's comparisons at small scale: TtT vs AR-only vs NAR-only, and TtT without BANOM, PPM or SST.

    python -m benchmarks.reproduce                      # train + evaluate every row, then write the report
    python -m benchmarks.reproduce --report-only        # rewrite the report from the runs done so far

Every system trains with `configs/repro.yaml` for the same number of steps, batch and data; only the
overrides in `SYSTEMS` differ. Each (system, seed) is one `ttt train` run in `RUNS/<system>-s<seed>` and
one `ttt eval` of its final model on the first `--per-task` items of each task of the held-out split.
The script is resumable at every level: a finished stage is skipped, an interrupted training run goes
on with `--resume`. Rows run seed by seed, so a partial study already covers every system.

The report (`reports/reproduction.md`, `.json`, `.png`) gives each metric as the mean over seeds with a
95% Student-t interval, and one paragraph per claim of the paper, decided by Welch's t-test on the
seed means (p < 0.05): "supported", "contradicted" (significant, other direction) or "not resolved".
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.rows import open_card, save_card, ttt_command
from ttt.config import is_model_dir

log = logging.getLogger("reproduce")

SYSTEMS: dict[str, tuple[str, list[str]]] = {
    "ttt": ("TtT", []),
    "ar": ("AR only", ["ttt.mode=ar"]),
    "nar": ("NAR only", ["ttt.mode=nar"]),
    "no-banom": ("TtT w/o BANOM", ["ttt.unmasked_audio_prob=0"]),
    "no-ppm": ("TtT w/o PPM", ["ttt.prefix_preservation_ratio=0"]),
    "no-sst": ("TtT w/o SST", ["ttt.quad_span_truncation_prob=0"]),
}


@dataclass(frozen=True)
class Metric:
    task: str
    key: str
    label: str
    better: str  # "lower" | "higher" | "one" (closest to 1)

    def value(self, metrics: dict) -> float | None:
        v = metrics.get(self.task, {}).get(self.key)
        return None if v is None else float(v)


METRICS = (
    Metric("asr", "wer", "ASR WER", "lower"),
    Metric("asr", "cer", "ASR CER", "lower"),
    Metric("text_qa", "accuracy", "text QA acc", "higher"),
    Metric("spoken_qa", "text_accuracy", "spoken QA text acc", "higher"),
    Metric("spoken_qa", "audio_accuracy", "spoken QA audio acc", "higher"),
    Metric("spoken_qa", "intelligibility_wer", "spoken answer WER", "lower"),
    Metric("tts", "intelligibility_wer", "TTS WER", "lower"),
    Metric("tts", "mcd_dtw_db", "TTS MCD dB", "lower"),
    Metric("tts", "length_ratio", "TTS length ratio", "one"),
    Metric("tts", "stop_within_20pct", "TTS stop ±20%", "higher"),
    Metric("tts", "dnsmos_ovrl", "TTS DNSMOS", "higher"),
    Metric("tts", "audio_forward_passes_per_audio_s", "audio fwd/s", "lower"),
    Metric("tts", "rtf", "TTS RTF", "lower"),
    Metric("spoken_qa", "time_to_first_audio_s", "first audio s", "lower"),
)
BY_LABEL = {m.label: m for m in METRICS}

# (claim, [(system A, system B, metric labels)]) – each pair asks "is A better than B on this metric?"
CLAIMS = (
    ("TtT beats AR-only on ASR", [("ttt", "ar", ["ASR WER"])]),
    ("TtT beats NAR-only on ASR", [("ttt", "nar", ["ASR WER"])]),
    ("TtT beats AR-only and NAR-only on spoken QA",
     [("ttt", b, ["spoken QA text acc", "spoken QA audio acc"]) for b in ("ar", "nar")]),
    ("NAR-only is the worst of the three",
     [(a, "nar", ["ASR WER", "spoken QA text acc", "TTS WER"]) for a in ("ttt", "ar")]),
    ("Removing SST badly hurts stopping and dialogue",
     [("ttt", "no-sst", ["TTS stop ±20%", "TTS length ratio", "spoken QA text acc"])]),
    ("PPM helps", [("ttt", "no-ppm", ["ASR WER", "spoken QA text acc", "TTS WER"])]),
    ("BANOM helps", [("ttt", "no-banom", ["ASR WER", "spoken QA text acc", "TTS WER"])]),
)


def run_row(system: str, seed: int, args: argparse.Namespace) -> None:
    """Train (or resume) and evaluate one (system, seed); stages already done are skipped."""
    run_dir = args.runs / f"{system}-s{seed}"
    budget = {"config": str(args.config), "steps": args.steps, "overrides": SYSTEMS[system][1], "seed": seed}
    card_file = run_dir / "reproduce.json"
    card = open_card(card_file, budget, {"train_s": 0.0})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if not is_model_dir(run_dir / "final"):
        log.info("train %s seed %d -> %s", system, seed, run_dir)
        resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
        cmd = ttt_command("train", "--config", str(args.config), "--out", str(run_dir), "--seed", str(seed),
                   "--max-steps", str(args.steps), *resume, *(f"--set={o}" for o in SYSTEMS[system][1]))
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        card["train_s"] += time.perf_counter() - start
        save_card(card_file, card)
    if not (run_dir / "eval" / "metrics.json").is_file():
        log.info("evaluate %s seed %d", system, seed)
        cmd = ttt_command("eval", "--model", str(run_dir / "final"), "--data", str(args.data), "--out",
                   str(run_dir / "eval"), "--per-task", str(args.per_task), "--threads", str(args.threads),
                   "--max-last-span", str(args.max_last_span), "--max-new-tokens", str(args.max_new_tokens),
                   "--seed", str(seed), "--no-progress")
        subprocess.run(cmd, check=True, env=env)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over seeds (a single seed gives a zero-width interval)."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if len(a) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
    return mean, mean - half, mean + half


def collect(runs: Path, seeds: list[int]) -> dict[str, dict]:
    """Per system: each finished seed's metrics.json and training time."""
    found: dict[str, dict] = {}
    for system in SYSTEMS:
        for seed in seeds:
            run_dir = runs / f"{system}-s{seed}"
            metrics_file = run_dir / "eval" / "metrics.json"
            if metrics_file.is_file():
                card = json.loads((run_dir / "reproduce.json").read_text())
                found.setdefault(system, {})[seed] = {"metrics": json.loads(metrics_file.read_text()),
                                                      "train_s": card["train_s"], "steps": card["steps"]}
    return found


def aggregate(found: dict[str, dict]) -> dict[str, dict]:
    """system -> metric label -> {"values": per-seed, "mean", "lo", "hi"}."""
    table: dict[str, dict] = {}
    for system, seeds in found.items():
        row = {}
        for m in METRICS:
            values = [v for v in (m.value(s["metrics"]) for s in seeds.values()) if v is not None]
            if values:
                mean, lo, hi = t_interval(values)
                row[m.label] = {"values": values, "mean": mean, "lo": lo, "hi": hi}
        train_s = [s["train_s"] for s in seeds.values()]
        row["train minutes"] = {"values": [t / 60 for t in train_s], "mean": float(np.mean(train_s)) / 60}
        table[system] = row
    return table


def compare(a: list[float], b: list[float], better: str) -> tuple[float, float]:
    """(advantage of a over b in the metric's good direction, Welch p-value; NaN with a single seed)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if better == "one":
        x, y = -np.abs(x - 1), -np.abs(y - 1)
    elif better == "lower":
        x, y = -x, -y
    gain = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return gain, float("nan")
    if x.std() == 0 and y.std() == 0:  # no seed noise at all: any difference is exact
        return gain, 0.0 if gain else 1.0
    with warnings.catch_warnings():  # near-identical seeds make scipy warn about precision; p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return gain, float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def judge(claim: str, pairs: list, table: dict, alpha: float = 0.05) -> tuple[str, list[str]]:
    """Verdict on one claim and a sentence per comparison behind it."""
    outcomes, sentences = [], []
    for a, b, labels in pairs:
        for label in labels:
            if label not in table.get(a, {}) or label not in table.get(b, {}):
                sentences.append(f"{label}: {SYSTEMS[a][0]} or {SYSTEMS[b][0]} not measured yet.")
                continue
            va, vb = table[a][label], table[b][label]
            gain, p = compare(va["values"], vb["values"], BY_LABEL[label].better)
            outcome = "supported" if gain > 0 and p < alpha else "contradicted" if gain < 0 and p < alpha else "open"
            outcomes.append(outcome)
            direction = "better" if gain > 0 else "worse" if gain < 0 else "equal"
            test = ("one seed, no test" if np.isnan(p) else "the same in every seed" if p == 0
                    else f"p = {p:.2g}" + (", within seed noise" if outcome == "open" else ""))
            sentences.append(f"{label}: {SYSTEMS[a][0]} {va['mean']:.3g} vs {SYSTEMS[b][0]} {vb['mean']:.3g} "
                             f"({direction}, {test}).")
    if not outcomes:
        verdict = "not measured yet"
    elif all(o == "supported" for o in outcomes):
        verdict = "supported"
    elif "contradicted" in outcomes and "supported" not in outcomes:
        verdict = "contradicted"
    elif "supported" in outcomes and "contradicted" in outcomes:
        verdict = "mixed"
    elif "supported" in outcomes:
        verdict = "partly supported"
    else:
        verdict = "not resolved at this budget"
    return verdict, sentences


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    if "lo" not in entry:
        return f"{entry['mean']:.1f}"
    if len(entry["values"]) < 2:  # one seed: no interval to show
        return f"{entry['mean']:.3g}"
    return f"{entry['mean']:.3g} ± {(entry['hi'] - entry['lo']) / 2:.2g}"


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEMS if s in table]
    fig, axes = plt.subplots(3, 5, figsize=(20, 10))
    for ax, m in zip(axes.flat, METRICS):
        for i, s in enumerate(systems):
            e = table[s].get(m.label)
            if e is None:
                continue
            ax.bar(i, e["mean"], color=f"C{i}", alpha=0.6)
            ax.errorbar(i, e["mean"], yerr=[[e["mean"] - e["lo"]], [e["hi"] - e["mean"]]], color="k", capsize=3)
            ax.scatter([i] * len(e["values"]), e["values"], color="k", s=8, zorder=3)
        ax.set_title(f"{m.label} ({m.better}{'' if m.better == 'one' else ' is better'})", fontsize=9)
        ax.set_xticks(range(len(systems)), [SYSTEMS[s][0] for s in systems], rotation=35, fontsize=7)
    for ax in list(axes.flat)[len(METRICS):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(found: dict, args: argparse.Namespace) -> Path:
    table = aggregate(found)
    args.reports.mkdir(parents=True, exist_ok=True)
    stem = args.reports / "reproduction"
    claims = [(c, *judge(c, pairs, table)) for c, pairs in CLAIMS]
    raw = {"setup": {"config": str(args.config), "steps": args.steps, "data": str(args.data),
                     "per_task": args.per_task, "seeds": args.seeds, "max_last_span": args.max_last_span,
                     "max_new_tokens": args.max_new_tokens},
           "systems": {s: {"overrides": SYSTEMS[s][1], "seeds": {str(k): v for k, v in found[s].items()}}
                       for s in found},
           "table": table, "claims": [{"claim": c, "verdict": v, "evidence": e} for c, v, e in claims]}
    (stem.with_suffix(".json")).write_text(json.dumps(raw, indent=1))
    if table:
        plot(table, stem.with_suffix(".png"))
    labels = [m.label for m in METRICS] + ["train minutes"]
    lines = [
        "# Reproduction: TtT vs AR-only vs NAR-only, and the BANOM / PPM / SST ablations", "",
        f"Written by `python -m benchmarks.reproduce` (raw numbers: `{stem.name}.json`; plot: `{stem.name}.png`).",
        f"Each row: `{args.config}` trained for {args.steps} steps from scratch, the same data and batch for "
        f"every row, seeds {args.seeds}; evaluated with `ttt eval --per-task {args.per_task}` on "
        f"`{args.data}` (held-out voices and questions, never used for tuning), at most {args.max_new_tokens} "
        f"tokens per turn and {args.max_last_span} codes in a final span. Cells: mean over seeds "
        "± half-width of the 95% Student-t interval. Metric definitions: docs/evaluation.md.", "",
        "| system | seeds | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for s in SYSTEMS:
        if s in table:
            lines.append(f"| {SYSTEMS[s][0]} | {len(found[s])} | "
                         + " | ".join(_cell(table[s].get(label)) for label in labels) + " |")
    lines += ["", "## The paper's claims", "",
              "Verdicts use Welch's t-test over seeds at p < 0.05 for each comparison named.", ""]
    for claim, verdict, evidence in claims:
        lines += [f"**{claim}: {verdict}.** " + " ".join(evidence), ""]
    if args.discussion.is_file():  # written by a person who read the numbers above; kept across rewrites
        lines += ["## Reading the results", "", args.discussion.read_text().strip(), ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    return stem.with_suffix(".md")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", type=Path, default=Path("configs/repro.yaml"), help="training config of every row")
    p.add_argument("--steps", type=int, default=1500, help="training steps per row (the budget)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    p.add_argument("--data", type=Path, default=Path("data/tokens-c4/eval_test.jsonl"), help="held-out eval JSONL")
    p.add_argument("--per-task", type=int, default=20, help="eval items per task")
    p.add_argument("--max-last-span", type=int, default=200, help="cap on codes in a final audio span")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="cap on tokens per turn; also the NAR baseline's response block")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per training / eval process")
    p.add_argument("--runs", type=Path, default=Path("runs/reproduce"), help="where the runs go")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where the report goes")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from finished runs")
    p.add_argument("--discussion", type=Path, default=Path("reports/reproduction_discussion.md"),
                   help="a hand-written reading of the results, appended to the report when the file exists")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.report_only:
        for seed in args.seeds:
            for system in args.systems:
                run_row(system, seed, args)
                write_report(collect(args.runs, args.seeds), args)
    report = write_report(collect(args.runs, args.seeds), args)
    log.info("report: %s", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
