"""The paper's comparisons at small scale, paired by item: TtT vs AR-only vs NAR-only, the BANOM / PPM / SST
ablations, and TtT with and without end padding.

    python -m benchmarks.reproduce --device cuda --jobs 24 --steps 6000 --plateau 4 --time-limit 9   # GPU + scorer
    python -m benchmarks.reproduce --jobs 2 --threads 1 --steps 6000 --plateau 4 --time-limit 170   # CPU, the study
    python -m benchmarks.reproduce --jobs 2 --steps 1500 --items 100          # CPU (4.5-10 min training per row)
    python -m benchmarks.reproduce --smoke                                    # every stage on CPU in minutes
    python -m benchmarks.reproduce --report-only --steps 6000 --plateau 4 --discussion reports/reproduction_discussion.md
    python -m benchmarks.reproduce --stage train --pack data/repro-pack       # training data, packed to carry
    bash benchmarks/gpu_reproduce.sh                                          # there: train, --bundle rows to $OUT
    python -m benchmarks.reproduce --stage eval --unbundle rows-*.tar --steps 6000 --plateau 4   # here: evaluate

Each (system, seed) is one `ttt train` of `--config` with the system's overrides, the same data, batch and
budget (`--steps`, a cap; `--plateau K` stops a run once K validations in a row did not improve its
validation loss), then one `ttt eval` per task on the *full* held-out split (or its first `--items` per
task). Runs go in parallel (`--jobs`, one subprocess each, `--threads` CPU threads each, on `--device`);
every stage is resumable: a finished stage is skipped, an interrupted training resumes, and `--time-limit`
ends a call cleanly (at the limit running jobs are stopped and resume on the next call; an eval that would not
end by then, by the time its task's evals took so far, is not started). The NAR baseline is
decoded with a response block per task as long as the longest training response of that task
(`--nar-length`), the lengths it was trained on, instead of the 256-token turn cap.

Statistics (`ttt.eval.paired`): every comparison is paired by item — a bootstrap over the test items (drawn
in clusters of items sharing a reference), the same draw for both systems and all their seeds, each system's
metric averaged over its seeds — and all the
comparisons the report makes are corrected together with Holm's procedure; each claim's verdict follows
from the corrected intervals (`ttt.eval.paired.VERDICT_RULE`). The report also says, per row, whether its
validation loss was still falling when the step cap ended it (a verdict between models still improving is
one about the budget). The report: `reports/reproduction.md`, `.json` (every number, per seed too) and `.png`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.jobs import Job, run_jobs
from benchmarks.rows import open_card, save_card, ttt_command
from ttt.config import is_model_dir
from ttt.eval.harness import SPEECH_TASKS
from ttt.eval.paired import VERDICT_RULE, Values, decide, paired_gain, resample_weights, verdict

log = logging.getLogger("reproduce")

TASKS = ("asr", "text_qa", "spoken_qa", "tts")
# the corpus's system prompt (ttt.format.SYSTEM key) of each eval task's training examples
PROMPT_OF_TASK = {"asr": "asr", "text_qa": "text_chat", "spoken_qa": "spoken_qa", "tts": "tts"}


@dataclass(frozen=True)
class System:
    label: str
    overrides: tuple[str, ...]


SYSTEMS: dict[str, System] = {
    "ttt": System("TtT", ()),
    "ar": System("AR only", ("ttt.mode=ar",)),
    "nar": System("NAR only", ("ttt.mode=nar",)),
    "no-banom": System("TtT w/o BANOM", ("ttt.unmasked_audio_prob=0",)),
    "no-ppm": System("TtT w/o PPM", ("ttt.prefix_preservation_ratio=0",)),
    "no-sst": System("TtT w/o SST", ("ttt.quad_span_truncation_prob=0",)),
    # end padding (`TtTConfig.last_span_pad`: 0..25 loss-free masks after the final span's closer) is ours,
    # not the paper's, and teaches the same end-of-speech cue as SST: these rows measure SST without it
    "ttt-nopad": System("TtT w/o end padding", ("ttt.last_span_pad=0",)),
    "no-sst-nopad": System("TtT w/o SST, w/o end padding", ("ttt.quad_span_truncation_prob=0", "ttt.last_span_pad=0")),
}
SMOKE_SYSTEMS = ("ttt", "nar")


@dataclass(frozen=True)
class Metric:
    task: str
    key: str
    label: str
    better: str  # "lower" | "higher"
    distance_from_one: bool = False  # compare |value - 1| per item (length ratio -> length error)

    def item_value(self, row: dict) -> tuple[float, float | None] | None:
        """(numerator, denominator or None) of one item of `items.jsonl`, or None when it has no value."""
        v = row.get("metrics", {}).get(self.key)
        if v is None:
            return None
        if isinstance(v, list):
            return float(v[0]), float(v[1])
        v = float(v)
        return (abs(v - 1.0) if self.distance_from_one else v), None


METRICS = (
    Metric("asr", "wer", "ASR WER", "lower"),
    Metric("asr", "cer", "ASR CER", "lower"),
    Metric("text_qa", "accuracy", "text QA acc", "higher"),
    Metric("spoken_qa", "text_accuracy", "spoken QA text acc", "higher"),
    Metric("spoken_qa", "audio_accuracy", "spoken QA audio acc", "higher"),
    Metric("spoken_qa", "intelligibility_wer", "spoken answer WER", "lower"),
    Metric("tts", "intelligibility_wer", "TTS WER", "lower"),
    Metric("tts", "mcd_dtw_db", "TTS MCD dB", "lower"),
    Metric("tts", "length_ratio", "TTS length error", "lower", distance_from_one=True),
    Metric("tts", "stop_within_20pct", "TTS stop ±20%", "higher"),
    Metric("tts", "dnsmos_ovrl", "TTS DNSMOS", "higher"),
    Metric("tts", "audio_forward_passes_per_audio_s", "audio fwd/s", "lower"),
    Metric("spoken_qa", "time_to_first_audio_s", "first audio s", "lower"),
)
BY_LABEL = {m.label: m for m in METRICS}
# `ttt eval` scores DNSMOS on every spoken answer; the study skips it where no metric above reads it (spoken QA:
# 400 items took ~1,300 s without it, 1,807 s with it, on one CPU thread)
DNSMOS_TASKS = {m.task for m in METRICS if m.key.startswith("dnsmos")}

# the scorer's transcripts of the eval data's reference recordings, shared by every row's evals
# (~2.6 CPU-s each: 155 in spoken QA, 80 in TTS; `ttt eval --reference-cache`)
REFERENCE_CACHE = "heard_references.json"

STOP = ["TTS stop ±20%", "TTS length error"]
# (claim, whose claim, [(system A, system B, metric labels)]): each comparison asks "is A better than B?"
CLAIMS = (
    ("TtT beats AR-only on ASR", "paper", [("ttt", "ar", ["ASR WER"])]),
    ("TtT beats NAR-only on ASR", "paper", [("ttt", "nar", ["ASR WER"])]),
    ("TtT beats AR-only and NAR-only on spoken QA", "paper",
     [("ttt", b, ["spoken QA text acc", "spoken QA audio acc"]) for b in ("ar", "nar")]),
    ("NAR-only is the worst of the three", "paper",
     [(a, "nar", ["ASR WER", "spoken QA text acc", "TTS WER"]) for a in ("ttt", "ar")]),
    ("SST helps stopping and dialogue", "paper", [("ttt", "no-sst", [*STOP, "spoken QA text acc"])]),
    ("SST helps stopping and dialogue, without end padding", "paper",
     [("ttt-nopad", "no-sst-nopad", [*STOP, "spoken QA text acc"])]),
    ("PPM helps", "paper", [("ttt", "no-ppm", ["ASR WER", "spoken QA text acc", "TTS WER"])]),
    ("BANOM helps", "paper", [("ttt", "no-banom", ["ASR WER", "spoken QA text acc", "TTS WER"])]),
    ("End padding helps stopping", "ours", [("ttt", "ttt-nopad", STOP)]),
)


# ---- data -----------------------------------------------------------------------------------------

def eval_splits(source: Path, out_dir: Path, items: int | None) -> dict[str, Path]:
    """One eval JSONL per task (its first `items`, or all) with absolute audio paths, so that `ttt eval`
    runs a task alone (the NAR baseline gets its own block length per task)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = defaultdict(list)
    for line in source.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        task = row.get("task")
        if task not in TASKS or (items is not None and len(rows[task]) >= items):
            continue
        for key in ("audio", "answer_audio"):
            if row.get(key):
                row[key] = str((source.parent / row[key]).resolve())
        rows[task].append(json.dumps(row))
    if not rows:
        raise ValueError(f"{source}: no items of the tasks {TASKS}")
    paths = {}
    for task, lines in rows.items():
        path = out_dir / f"{task}.jsonl"
        text = "\n".join(lines) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        paths[task] = path
    return paths


def nar_lengths(train_overrides: dict, config: Path, cache: Path) -> dict[str, dict]:
    """Per task, the NAR baseline's training response lengths (tokens the NAR loss covers, `<|im_end|>`
    included): {"block": the longest, "n", "min", "median", "within_pad": share of responses that a block
    of that length holds with at most `last_span_pad` pads — the range the model was trained on}.
    Cached in `cache`, keyed by the training data and config."""
    key = {"config": str(config), **{k: str(train_overrides.get(k)) for k in ("data.train", "backbone.tokenizer")}}
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["lengths"]
    from ttt.format import SYSTEM
    from ttt.training.config import load_config, parse_override
    from ttt.training.data import read_records
    from ttt.training.loop import build_model

    cfg = load_config(config, dict(parse_override(f"{k}={v}") for k, v in {**train_overrides, "ttt.mode": "nar"}.items()))
    records = read_records(cfg.data.train_files[0], cfg.data.split)
    model = build_model(cfg, records)
    task_of = {SYSTEM[p]: t for t, p in PROMPT_OF_TASK.items()}
    seen: dict[str, list[int]] = defaultdict(list)
    for rec in records:
        messages = rec.example.get("messages", []) if isinstance(rec.example, dict) else []
        task = task_of.get(messages[0].get("content")) if messages and messages[0].get("role") == "system" else None
        if task is not None:
            seen[task].append(int(model.encode(rec.example, 0).trainable.sum()))
    pad = model.config.last_span_pad
    lengths = {}
    for task, values in seen.items():
        v = np.asarray(values)
        block = int(v.max())
        lengths[task] = {"block": block, "n": int(v.size), "min": int(v.min()), "median": float(np.median(v)),
                         "within_pad": float(np.mean(block - v <= pad))}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "lengths": lengths}, indent=1))
    return lengths


def pack(data_dir: Path, eval_data: Path | None, out: Path) -> Path:
    """A self-contained copy of what the study reads — train/valid JSONL, build card, tokenizer, and the eval
    split with its audio — to carry to another machine. 16-bit WAV audio becomes FLAC (the same samples, about
    two thirds of the size); anything else is copied as it is."""
    import soundfile as sf

    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--pack {out}: exists and is not empty; give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "valid.jsonl", "build_card.json"):
        if (data_dir / name).is_file():
            shutil.copy2(data_dir / name, out / name)
    if (data_dir / "tokenizer").is_dir():
        shutil.copytree(data_dir / "tokenizer", out / "tokenizer")
    if eval_data is None:
        return out
    (out / "audio").mkdir()
    done: dict[Path, str] = {}
    lines = []
    for line in eval_data.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for key in ("audio", "answer_audio"):
            if row.get(key):
                src = (eval_data.parent / row[key]).resolve()
                if src not in done:
                    name = f"audio/{len(done):05d}"
                    if sf.info(src).subtype == "PCM_16":
                        samples, rate = sf.read(src, dtype="int16")
                        done[src] = f"{name}.flac"
                        sf.write(out / done[src], samples, rate, subtype="PCM_16")
                    else:
                        done[src] = f"{name}{src.suffix}"
                        shutil.copy2(src, out / done[src])
                row[key] = done[src]
        lines.append(json.dumps(row))
    (out / "eval_test.jsonl").write_text("\n".join(lines) + "\n")
    return out


# ---- the runs -------------------------------------------------------------------------------------

def data_id(data_dir: Path) -> str:
    """The training data's identity in a row's budget card: a hash of train.jsonl, so that a row trained on
    another machine (from a --pack copy at another path) is recognised here, and other data is refused."""
    import hashlib

    return "sha1:" + hashlib.sha1((data_dir / "train.jsonl").read_bytes()).hexdigest()[:16]


def train_overrides(args: argparse.Namespace) -> dict[str, str]:
    """`--set` values every row shares: the data folder, the plateau rule, the smoke model."""
    d = args.data_dir
    out = {"data.train": str(d / "train.jsonl"), "data.valid": str(d / "valid.jsonl"),
           "backbone.tokenizer": str(d / "tokenizer") if (d / "tokenizer").is_dir() else "null"}
    if args.plateau:
        out["early_stop_patience"] = str(args.plateau)
    if args.eval_interval:
        out["eval_interval"] = str(args.eval_interval)
        out["save_interval"] = str(args.eval_interval)
    if args.smoke:
        out.update({"backbone.hidden_size": "32", "backbone.layers": "2", "backbone.heads": "2",
                    "backbone.kv_heads": "1", "backbone.intermediate_size": "64", "batch_size": "4",
                    "eval_batch_size": "8", "max_eval_batches": "1", "log_interval": "5",
                    "optim.warmup_steps": "2"})
    return out


def job_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # ttt train (accelerate) would take a GPU if it saw one
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return env


def expected_eval_seconds(runs: Path, system: str, task: str, device: str) -> float | None:
    """How long evaluating `system` on `task` takes: the time of the latest eval of the task this study
    finished on the same device, by the same system, else by any (the models are of one size; the answers'
    lengths differ by system). The latest, because the cost changes as the study runs (the reference
    recordings are heard once, the load beside it varies). None before any has finished. An eval starts over
    when it is stopped, so the runner does not start one that this estimate says would not end by the deadline."""
    finished: dict[str, list[tuple[float, float]]] = {}  # system -> (finished at, seconds)
    for out in runs.glob(f"*-s*/eval-{task}"):
        timing, settings = out / "eval_seconds.json", out / "eval_settings.json"
        if timing.is_file() and settings.is_file() and json.loads(settings.read_text()).get("device") == device:
            finished.setdefault(out.parent.name.rsplit("-s", 1)[0], []).append(
                (timing.stat().st_mtime, float(json.loads(timing.read_text()))))
    same = finished.get(system) or [t for ts in finished.values() for t in ts]
    return max(same)[1] if same else None


def row_jobs(system: str, seed: int, args: argparse.Namespace, splits: dict[str, Path],
             lengths: dict[str, dict] | None) -> list[Job]:
    """Train (system, seed), then evaluate its final model on each task (`--stage`: one of the two)."""
    run_dir = args.runs / f"{system}-s{seed}"
    if args.stage == "eval" and not is_model_dir(run_dir / "final"):
        log.warning("%s-s%d: not trained yet, not evaluated", system, seed)
        return []
    overrides = train_overrides(args)
    budget = {"config": str(args.config), "steps": args.steps, "plateau": args.plateau,
              "overrides": list(SYSTEMS[system].overrides), "seed": seed, "data": data_id(args.data_dir)}
    card_file = run_dir / "reproduce.json"
    card = open_card(card_file, budget, {"train_s": 0.0})
    env = job_env(args)

    def trained(seconds: float) -> None:
        """The training loop's own clock (summed over resumed calls, in the last checkpoint's state), else
        this call's wall time added."""
        from ttt.training.checkpoint import latest_checkpoint

        ckpt = latest_checkpoint(run_dir)
        state = ckpt / "training_state" / "state.json" if ckpt is not None else None
        if state is not None and state.is_file() and "train_seconds" in json.loads(state.read_text()):
            card["train_s"] = float(json.loads(state.read_text())["train_seconds"])
        else:
            card["train_s"] += seconds
        save_card(card_file, card)

    resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
    train = Job(f"train {system}-s{seed}", ttt_command(
        "train", "--config", str(args.config), "--out", str(run_dir), "--seed", str(seed),
        "--max-steps", str(args.steps), *resume, *(f"--set={o}" for o in SYSTEMS[system].overrides),
        *(f"--set={k}={v}" for k, v in overrides.items())),
        run_dir / "train.log", env, done=lambda: is_model_dir(run_dir / "final"), finish=trained)
    trains = args.stage in ("train", "all")
    jobs = [train] if trains else []
    if args.stage == "train":
        return jobs
    for task, split in splits.items():
        out, tmp = run_dir / f"eval-{task}", run_dir / f".eval-{task}.tmp"
        settings = {"data": str(split), "items": args.items, "max_last_span": args.max_last_span,
                    "max_new_tokens": args.max_new_tokens, "device": args.device}
        # every model is scored beside the scorer on the same reference recordings: heard once for the study
        extra = ["--reference-cache", str(args.runs / "eval-data" / REFERENCE_CACHE)]
        if task in SPEECH_TASKS and task not in DNSMOS_TASKS:
            settings["dnsmos"] = False
            extra.append("--no-dnsmos")
        if system == "nar" and lengths and task in lengths:
            settings["nar_length"] = lengths[task]["block"]
            extra += ["--nar-length", str(lengths[task]["block"])]

        def finished(out=out, tmp=tmp, settings=settings) -> bool:
            if not (out / "items.jsonl").is_file():
                return False
            saved = json.loads((out / "eval_settings.json").read_text())
            if settings.get("dnsmos") is False and saved.get("dnsmos", True):
                saved = {**saved, "dnsmos": False}  # it scored DNSMOS too: a superset of what is asked
            if saved != settings:
                raise ValueError(f"{out} was evaluated with {saved}, not {settings}; use another --runs folder")
            return True

        def prepare(tmp=tmp) -> None:
            shutil.rmtree(tmp, ignore_errors=True)

        def move(seconds: float, out=out, tmp=tmp, settings=settings) -> None:
            (tmp / "eval_settings.json").write_text(json.dumps({**settings}, indent=1))
            (tmp / "eval_seconds.json").write_text(json.dumps(seconds))
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)

        jobs.append(Job(f"eval {system}-s{seed} {task}", ttt_command(
            "eval", "--model", str(run_dir / "final"), "--data", str(split), "--out", str(tmp),
            "--threads", str(args.threads), "--device", args.device, "--max-last-span", str(args.max_last_span),
            "--max-new-tokens", str(args.max_new_tokens), "--seed", str(seed), "--no-progress", *extra),
            run_dir / f"eval-{task}.log", env, after=(train.name,) if trains else (),
            done=finished, prepare=prepare, finish=move,
            expected_s=expected_eval_seconds(args.runs, system, task, args.device)))
    return jobs


# ---- moving trained rows between machines ---------------------------------------------------------

BUNDLE_RECORD = "bundled.json"


def bundle(runs: Path, out: Path, limit_mib: float, file_mib: float = 15.0) -> list[Path]:
    """Trained rows not bundled before, as tar files of at most `file_mib` MiB each and `limit_mib` MiB in all
    (what a machine without the scorer sends back to one that evaluates): each row's `final/` with its
    weights in float16 (the shipped model's precision; half the size), `log.jsonl` and `reproduce.json`.
    The rows sent are listed in RUNS/bundled.json, so the next call sends the rest."""
    import io
    import tarfile

    from safetensors.torch import load_file, save_file

    record = runs / BUNDLE_RECORD
    sent = set(json.loads(record.read_text())) if record.is_file() else set()
    rows = sorted(d.name for d in runs.iterdir() if is_model_dir(d / "final") and d.name not in sent)
    out.mkdir(parents=True, exist_ok=True)
    files, group, size, total = [], [], 0, 0

    def payload(row: str) -> list[tuple[str, bytes]]:
        items = []
        for f in sorted((runs / row / "final").iterdir()):
            data = f.read_bytes()
            if f.suffix == ".safetensors":
                state = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(f).items()}
                tmp = f.with_suffix(".fp16.tmp")
                save_file(state, tmp, metadata={"format": "pt"})
                data = tmp.read_bytes()
                tmp.unlink()
            items.append((f"{row}/final/{f.name}", data))
        for name in ("log.jsonl", "reproduce.json"):
            if (runs / row / name).is_file():
                items.append((f"{row}/{name}", (runs / row / name).read_bytes()))
        return items

    def flush() -> None:
        nonlocal group, size
        if not group:
            return
        path = out / f"rows-{group[0][0]}.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in (item for _, items in group for item in items):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        files.append(path)
        groups_done.append([r for r, _ in group])
        group, size = [], 0

    groups_done: list[list[str]] = []
    for row in rows:
        items = payload(row)
        n = sum(len(d) + 1024 for _, d in items)
        if total + n > limit_mib * 2**20:
            break
        if size + n > file_mib * 2**20:
            flush()
        group.append((row, items))
        size, total = size + n, total + n
    flush()
    record.write_text(json.dumps(sorted(sent | {r for g in groups_done for r in g}), indent=1))
    left = len(rows) - sum(len(g) for g in groups_done)
    log.info("bundled %d rows into %d files (%.1f MiB); %d trained rows left for the next call",
             sum(len(g) for g in groups_done), len(files), total / 2**20, left)
    return files


def unbundle(files: list[Path], runs: Path) -> list[str]:
    """Unpack `bundle` files into RUNS (a row already trained here is left alone); returns the rows added."""
    import tarfile

    added = []
    for path in files:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith("/") or ".." in Path(m.name).parts or not m.isfile():
                    raise ValueError(f"{path}: unexpected member {m.name!r}; not a reproduce bundle")
            for row in sorted({m.name.split("/")[0] for m in members}):
                if is_model_dir(runs / row / "final"):
                    log.info("%s: already here, kept", row)
                    continue
                tar.extractall(runs, members=[m for m in members if m.name.split("/")[0] == row], filter="data")
                added.append(row)
    return added


# ---- analysis -------------------------------------------------------------------------------------

CLUSTER_FIELD = {"asr": "text", "tts": "text", "spoken_qa": "answer", "text_qa": "answer"}


def item_clusters(eval_data: Path) -> dict[str, str]:
    """Item id -> its cluster for the bootstrap: items that share a reference are drawn together (ASR and TTS:
    the same sentence in several voices; spoken and text QA: questions with the same answer, i.e. about one
    fact), since they are not independent. Empty when the eval file is not here."""
    if not eval_data.is_file():
        log.warning("%s not found: the bootstrap resamples single items, not clusters", eval_data)
        return {}
    out = {}
    for line in eval_data.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            field = CLUSTER_FIELD.get(row.get("task"))
            if field and row.get("id") is not None:
                out[str(row["id"])] = f"{row['task']}:{str(row.get(field, '')).strip().lower()}"
    return out


TAIL_STEPS = 1000  # "still falling?" looks at this many final steps of a run


def _log_records(run_dir: Path) -> list[dict]:
    """The records of one row's training log (`log.jsonl`), none before it has one."""
    log_file = run_dir / "log.jsonl"
    return [json.loads(x) for x in log_file.read_text().splitlines() if x.strip()] if log_file.is_file() else []


def _progress(run_dir: Path, records: list[dict] | None = None) -> tuple[int, str | None]:
    """(last logged step, why training stopped early or "done") of one row."""
    records = _log_records(run_dir) if records is None else records
    stopped = next((r["stopped"] for r in records if "stopped" in r), None)
    return max((r.get("step", 0) for r in records), default=0), stopped or ("done" if is_model_dir(run_dir / "final") else None)


def _valid_curve(records: list[dict]) -> list[tuple[int, float]]:
    """(step, validation loss) of one row's log records, in step order; a step validated again after a resume
    keeps its last value."""
    return sorted({int(r["step"]): float(r["valid_loss"]) for r in records if "valid_loss" in r}.items())


def still_falling(curve: list[tuple[int, float]], window: int = TAIL_STEPS) -> float | None:
    """The validation loss's change over the last `window` steps of a run (negative: still falling), from
    the validation nearest `window` steps before the last; None when the run is shorter than that."""
    if not curve or curve[-1][0] - curve[0][0] < window:
        return None
    last_step, last = curve[-1]
    before = min((c for c in curve if c[0] <= last_step - window), key=lambda c: last_step - window - c[0])
    return last - before[1]


def collect(runs: Path, systems: list[str], seeds: list[int]) -> dict[str, dict[int, dict]]:
    """system -> seed -> {"items": {task: [rows]}, "train_s", "steps", "stopped", "valid": [(step, loss)]} for
    every finished eval."""
    found: dict[str, dict[int, dict]] = {}
    for system in systems:
        for seed in seeds:
            run_dir = runs / f"{system}-s{seed}"
            items = {}
            for task in TASKS:
                f = run_dir / f"eval-{task}" / "items.jsonl"
                if f.is_file():
                    items[task] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            if not items:
                continue
            card = json.loads((run_dir / "reproduce.json").read_text())
            records = _log_records(run_dir)
            steps, stopped = _progress(run_dir, records)
            found.setdefault(system, {})[seed] = {"items": items, "train_s": card.get("train_s", 0.0),
                                                  "steps": steps, "stopped": stopped, "valid": _valid_curve(records)}
    return found


def per_item(found: dict, system: str, metric: Metric) -> dict[int, dict[str, tuple]]:
    """seed -> item id -> (num, den) for one system and metric."""
    out = {}
    for seed, run in found.get(system, {}).items():
        values = {r["id"]: metric.item_value(r) for r in run["items"].get(metric.task, [])}
        out[seed] = {k: v for k, v in values.items() if v is not None}
    return {s: v for s, v in out.items() if v}


def to_values(by_seed: dict[int, dict[str, tuple]], ids: list[str]) -> Values:
    num = [[by_seed[s][i][0] for i in ids] for s in sorted(by_seed)]
    ratio = by_seed[next(iter(by_seed))][ids[0]][1] is not None
    den = [[by_seed[s][i][1] for i in ids] for s in sorted(by_seed)] if ratio else None
    return Values(num, den)


def common_ids(*by_seeds: dict[int, dict]) -> list[str]:
    """Items with a value in every seed of every system given (none if a system has no seed)."""
    if not by_seeds or not all(by_seeds):
        return []
    return sorted(set.intersection(*(set(items) for by_seed in by_seeds for items in by_seed.values())))


def summarize_system(found: dict, system: str, resamples: int, clusters: dict | None = None, seed: int = 0) -> dict:
    """metric label -> {"value", "lo", "hi" (95% bootstrap over items, pooled over seeds), "n", "per_seed"}."""
    row = {}
    for m in METRICS:
        by_seed = per_item(found, system, m)
        ids = common_ids(by_seed)
        if not ids:
            continue
        try:
            v = to_values(by_seed, ids)
        except ValueError:  # e.g. a ratio whose denominators are all zero in a seed
            continue
        boot = v.statistic(resample_weights(len(ids), resamples, seed, _groups(ids, clusters)))
        per_seed = {str(s): float(Values(v.num[i:i + 1], None if v.den is None else v.den[i:i + 1]).statistic())
                    for i, s in enumerate(sorted(by_seed))}
        row[m.label] = {"value": float(v.statistic()), "lo": float(np.quantile(boot, 0.025)),
                        "hi": float(np.quantile(boot, 0.975)), "n": len(ids), "per_seed": per_seed}
    return row


def _groups(ids: list[str], clusters: dict | None) -> list[str] | None:
    return None if not clusters else [clusters.get(i, f"item:{i}") for i in ids]


def comparisons(found: dict, resamples: int, alpha: float, clusters: dict | None = None) -> tuple[dict, list[dict]]:
    """Every (A, B, metric) the claims name, tested paired by item and corrected together (Holm); and each
    claim with its verdict."""
    gains, keys = {}, {}
    for _, _, pairs in CLAIMS:
        for a, b, labels in pairs:
            for label in labels:
                key = f"{a} vs {b}: {label}"
                if key in gains or key in keys:
                    continue
                m = BY_LABEL[label]
                va, vb = per_item(found, a, m), per_item(found, b, m)
                ids = common_ids(va, vb)
                keys[key] = (a, b, label)
                if not ids:
                    continue
                try:
                    gains[key] = paired_gain(to_values(va, ids), to_values(vb, ids), m.better, resamples,
                                             groups=_groups(ids, clusters))
                except ValueError as err:
                    log.warning("%s: not tested (%s)", key, err)
    decisions = decide(gains, alpha)
    claims = []
    for claim, whose, pairs in CLAIMS:
        names = [f"{a} vs {b}: {label}" for a, b, labels in pairs for label in labels]
        outcomes = [decisions[n].outcome for n in names if n in decisions]
        claims.append({"claim": claim, "whose": whose, "comparisons": names,
                       "tested": sum(n in decisions for n in names),
                       "verdict": verdict(outcomes) if len(outcomes) == len(names) else
                       ("not measured" if not outcomes else f"incomplete ({verdict(outcomes)} so far)")})
    table = {k: {**asdict(d), "a": keys[k][0], "b": keys[k][1], "metric": keys[k][2]} for k, d in decisions.items()}
    return table, claims


# ---- report ---------------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _p(p: float, resamples: int) -> str:
    """A bootstrap p-value; 0 means no resample crossed 0, i.e. below the smallest one it can show (2/B)."""
    return f"< {2 / resamples:.1g}" if p == 0 else f"{p:.2g}"


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return f"{_fmt(entry['value'])} [{_fmt(entry['lo'])}, {_fmt(entry['hi'])}]"


def model_size(found: dict, runs: Path) -> str:
    """"N parameters, L layers, hidden H" of the first finished model (every row shares the architecture)."""
    for system, seeds in found.items():
        for seed in seeds:
            cfg_file = runs / f"{system}-s{seed}" / "final" / "config.json"
            if cfg_file.is_file():
                from safetensors import safe_open

                c = json.loads(cfg_file.read_text())
                n = 0
                for f in (runs / f"{system}-s{seed}" / "final").glob("*.safetensors"):
                    with safe_open(f, "pt") as st:
                        n += sum(int(np.prod(st.get_slice(k).get_shape())) for k in st.keys())
                return f"{n / 1e6:.2f} M parameters, {c.get('num_hidden_layers')} layers, hidden {c.get('hidden_size')}"
    return "no model finished yet"


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEMS if s in table]
    fig, axes = plt.subplots(3, 5, figsize=(22, 11))
    for ax, m in zip(axes.flat, METRICS):
        for i, s in enumerate(systems):
            e = table[s].get(m.label)
            if e is None:
                continue
            ax.bar(i, e["value"], color=f"C{i}", alpha=0.6)
            ax.errorbar(i, e["value"], yerr=[[e["value"] - e["lo"]], [e["hi"] - e["value"]]], color="k", capsize=3)
            ax.scatter([i] * len(e["per_seed"]), list(e["per_seed"].values()), color="k", s=8, zorder=3)
        ax.set_title(f"{m.label} ({m.better} is better)", fontsize=9)
        ax.set_xticks(range(len(systems)), [SYSTEMS[s].label for s in systems], rotation=35, fontsize=7)
    for ax in list(axes.flat)[len(METRICS):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def report_dir(found: dict, seeds: list[int], runs: Path) -> Path:
    """Where the report goes by default: `reports/` (the committed study) once every system and seed is
    evaluated on every task, else RUNS/report, so that a time-limited call part-way through a study that
    spans several sessions does not replace the committed report with a partial one."""
    missing = [f"{s}-s{seed}" for s in SYSTEMS for seed in seeds
               if set(found.get(s, {}).get(seed, {}).get("items", {})) != set(TASKS)]
    if not missing:
        return Path("reports")
    log.info("%d of %d rows not fully evaluated yet (%s...): the report goes to %s, not reports/",
             len(missing), len(SYSTEMS) * len(seeds), missing[0], runs / "report")
    return runs / "report"


def write_report(found: dict, args: argparse.Namespace, lengths: dict | None) -> Path:
    """`reproduction.md`, `.json` and `.png` in `args.reports` from the finished runs."""
    clusters = item_clusters(args.eval_data)
    table = {s: summarize_system(found, s, args.resamples, clusters) for s in SYSTEMS if s in found}
    tests, claims = comparisons(found, args.resamples, args.alpha, clusters)
    args.reports.mkdir(parents=True, exist_ok=True)
    stem = args.reports / "reproduction"
    runs = {s: {str(k): {**{key: v[key] for key in ("train_s", "steps", "stopped")},
                         "valid_loss": v["valid"][-1][1] if v["valid"] else None,
                         "best_valid_loss": min(x for _, x in v["valid"]) if v["valid"] else None,
                         "valid_change_tail": still_falling(v["valid"])} for k, v in seeds.items()}
            for s, seeds in found.items()}
    setup = {"config": str(args.config), "data": str(args.data_dir), "eval_data": str(args.eval_data),
             "steps_cap": args.steps, "plateau": args.plateau, "seeds": args.seeds, "items_per_task": args.items,
             "device": args.device, "max_last_span": args.max_last_span, "max_new_tokens": args.max_new_tokens,
             "alpha": args.alpha, "resamples": args.resamples, "correction": "Holm", "smoke": args.smoke,
             "resampled": "clusters of items sharing a reference" if clusters else "items",
             "model": model_size(found, args.runs)}
    raw = {"setup": setup, "systems": {s: {"overrides": list(SYSTEMS[s].overrides), "runs": runs.get(s, {})}
                                       for s in SYSTEMS if s in found},
           "nar_lengths": lengths, "table": table, "comparisons": tests, "claims": claims}
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    if table:
        plot(table, stem.with_suffix(".png"))
    labels = [m.label for m in METRICS]
    budget = f"at most {args.steps} steps" + (f", stopped once {args.plateau} validations in a row did not improve "
                                              "the validation loss" if args.plateau else "")
    n_items = {t: max((len(run["items"].get(t, [])) for seeds in found.values() for run in seeds.values()), default=0)
               for t in TASKS}
    lines = [
        "# Reproduction: TtT vs AR-only vs NAR-only, the BANOM / PPM / SST ablations, and end padding", "",
        f"Written by `python -m benchmarks.reproduce` (every number, per seed too: `{stem.name}.json`; plot: "
        f"`{stem.name}.png`){' — a SMOKE run: tiny model and budget, a few items; it decides nothing' if args.smoke else ''}.",
        f"Each row: `{args.config}` ({setup['model']}) trained from scratch on `{args.data_dir}`, {budget}, "
        f"the same data and batch for every row, seeds {args.seeds}, on `{args.device}`. Each row's last model "
        f"(the weights at the step its training ended; a plateau stops training, it does not roll back to the best "
        f"checkpoint) is evaluated "
        f"with `ttt eval` on `{args.eval_data}` (held-out voices and questions; items per task: "
        + ", ".join(f"{t} {n}" for t, n in n_items.items()) +
        f"), at most {args.max_new_tokens} tokens per turn and {args.max_last_span} codes in a final span.",
    ]
    if lengths:
        lines += ["", "The NAR baseline decodes one response block per task as long as the longest training response "
                  "of that task (the lengths it was trained on: responses plus 0–`last_span_pad` `<|im_end|>` pads): "
                  + "; ".join(f"{t} {v['block']} tokens (responses {v['min']}–{v['block']}, "
                              f"{v['within_pad']:.0%} within the trained pad range)" for t, v in sorted(lengths.items()))
                  + "."]
    unit = ("clusters of items (items sharing a reference — ASR and TTS: the sentence, in several voices; QA: the "
            "answer, i.e. the fact — are drawn together, as they are not independent)" if clusters else "items")
    lines += ["", f"Cells: the metric over all items, averaged over seeds, with its 95% bootstrap interval over {unit}, "
              "pooled over seeds. Metric definitions: docs/evaluation.md. TTS length error is |length ratio − 1| per "
              "item. Train min and first audio s are wall-clock times on the machine that trained or evaluated each "
              "row (the interval of first audio s covers only the items): where rows ran on different machines, "
              "compare them within a seed (the JSON's per-seed values); audio fwd/s is a count, the same on any "
              "machine.", "",
              "| system | seeds | steps | train min | " + " | ".join(labels) + " |",
              "|---|---|---|---|" + "---|" * len(labels)]
    for s in SYSTEMS:
        if s in table:
            seeds = found[s]
            steps = "/".join(str(r["steps"]) for r in seeds.values())
            minutes = np.mean([r["train_s"] for r in seeds.values()]) / 60
            lines.append(f"| {SYSTEMS[s].label} | {len(seeds)} | {steps} | {minutes:.1f} | "
                         + " | ".join(_cell(table[s].get(label)) for label in labels) + " |")
    lines += convergence_lines(runs, args.steps)
    tts = table.get("ttt", {}).get("TTS WER")
    if tts:
        ref = _reference_wer(found.get("ttt", {}))
        floor = tts["value"] > 0.5
        lines += ["", f"**Is TtT's audio off the floor?** TtT's TTS scorer WER is {_cell(tts)} (the reference voice's own: "
                  f"{_fmt(ref) if ref is not None else '–'}; above 0.5 counts as the floor here); "
                  + ("its speech is mostly unintelligible at this budget, so comparisons of audio metrics say little "
                     "about the method." if floor else "its speech is intelligible enough for the audio comparisons "
                                                       "to mean something.")]
    m = len(tests)
    lines += ["", "## Comparisons", "",
              f"Each comparison is paired by item: {args.resamples} bootstrap resamples of the test "
              f"{'item clusters' if clusters else 'items'} (the same draw "
              "for both systems and all seeds; each system's metric averaged over its seeds). Gain: A's advantage over "
              f"B (positive: A better). All {m} comparisons are corrected together with **Holm's** step-down procedure "
              f"(family-wise error ≤ {args.alpha}): taken in order of their bootstrap p-value, the k-th is shown with "
              f"its interval at confidence 1 − {args.alpha}/(m − k + 1), and it is decided (A better / A worse) when "
              "that interval excludes 0 and every comparison before it was decided. The intervals cover the sampling "
              "of test items for these trained models; seed-to-seed spread is in the per-seed values of the JSON.", "",
              "| A vs B | metric | items | gain | Holm level | interval | p | Holm p | outcome |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, d in sorted(tests.items(), key=lambda kv: kv[1]["p"]):
        lines.append(f"| {SYSTEMS[d['a']].label} vs {SYSTEMS[d['b']].label} | {d['metric']} | {d['items']} | "
                     f"{d['estimate']:+.3g} | {d['confidence']:.4f} | [{d['low']:+.3g}, {d['high']:+.3g}] | "
                     f"{_p(d['p'], args.resamples)} | {_p(d['p_holm'], args.resamples)} | **{d['outcome']}** |")
    lines += ["", "## The claims", "", VERDICT_RULE + " Claims marked *ours* test this project's own design, not the "
              "paper's.", ""]
    for c in claims:
        evidence = "; ".join(
            f"{tests[n]['metric']} {SYSTEMS[tests[n]['a']].label} vs {SYSTEMS[tests[n]['b']].label}: "
            f"{tests[n]['estimate']:+.3g} [{tests[n]['low']:+.3g}, {tests[n]['high']:+.3g}] ({tests[n]['outcome']})"
            for n in c["comparisons"] if n in tests) or "no comparison measured yet"
        lines += [f"**{c['claim']}**{' (*ours*)' if c['whose'] == 'ours' else ''}: **{c['verdict']}.** {evidence}.", ""]
    if args.discussion is not None and args.discussion.is_file():  # a person's reading of these numbers
        lines += ["## Reading the results", "", args.discussion.read_text().strip(), ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    return stem.with_suffix(".md")


def convergence_lines(runs: dict, cap: int) -> list[str]:
    """Whether each row's validation loss had stopped falling when its training ended: a verdict on rows still
    improving at the step cap holds at this budget, not necessarily at convergence."""
    if not runs:
        return []
    lines = ["", f"**Had the rows converged?** Validation loss per seed (`/` between seeds): at the end, its best, and "
             f"its change over the last {TAIL_STEPS} steps (negative: still falling). The rows' losses are not comparable "
             "across systems (AR and NAR lack one of the two terms; the ablations change what is masked).", "",
             f"| system | stopped | valid loss | best | change, last {TAIL_STEPS} steps |", "|---|---|---|---|---|"]
    falling = total = 0
    for s in SYSTEMS:
        if s not in runs:
            continue
        seeds = runs[s].values()

        def cell(key: str, fmt: str = ".3f") -> str:
            return "/".join("–" if r[key] is None else format(r[key], fmt) for r in seeds)

        stops = "/".join(f"plateau at {r['steps']}" if r["stopped"] == "plateau" else f"cap ({r['steps']})"
                         for r in seeds)
        lines.append(f"| {SYSTEMS[s].label} | {stops} | {cell('valid_loss')} | {cell('best_valid_loss')} | "
                     f"{cell('valid_change_tail', '+.3f')} |")
        for r in seeds:
            total += 1
            falling += r["stopped"] != "plateau" and r["steps"] >= cap and (r["valid_change_tail"] or 0) < 0
    lines += ["", f"{falling} of {total} trained rows were still improving when the {cap}-step cap ended them: "
              + ("the comparisons below are between models at this budget, and a system that learns faster can win "
                 "them without being better at convergence." if falling else "every row had stopped improving.")]
    return lines


def _reference_wer(seeds: dict) -> float | None:
    """The scorer's WER on the reference voice's renderings of the TTS items (the floor of TTS WER)."""
    num = den = 0.0
    for run in list(seeds.values())[:1]:
        for r in run["items"].get("tts", []):
            v = r.get("metrics", {}).get("reference_wer")
            if isinstance(v, list):
                num, den = num + v[0], den + v[1]
    return num / den if den else None


# ---- command line ---------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", type=Path, default=Path("configs/repro.yaml"), help="training config of every row")
    p.add_argument("--data-dir", type=Path, default=Path("data/tokens-c4"),
                   help="train.jsonl, valid.jsonl, tokenizer/ (as `ttt data build` writes them, or a --pack folder)")
    p.add_argument("--eval-data", type=Path, help="held-out eval JSONL (default: DATA_DIR/eval_test.jsonl)")
    p.add_argument("--steps", type=int, default=1500, help="training steps per row (a cap with --plateau)")
    p.add_argument("--plateau", type=int, default=0, metavar="K",
                   help="stop a row once K validations in a row did not improve its validation loss (0: off)")
    p.add_argument("--eval-interval", type=int, help="steps between validations (and checkpoints); default: the config's")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    p.add_argument("--items", type=int, help="eval items per task (default: the full split)")
    p.add_argument("--max-last-span", type=int, default=200, help="cap on codes in a final audio span")
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap on tokens per turn")
    p.add_argument("--device", default="cpu", help="cpu or cuda: where every training and eval job runs")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each a subprocess)")
    p.add_argument("--threads", type=int, help="CPU threads per job (default: cores / jobs)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after MIN minutes: running jobs are stopped (they resume next time), the report "
                        "written; an eval that would not end by then is not started")
    p.add_argument("--runs", type=Path, help="where the runs go (default: runs/reproduce, runs/reproduce-smoke)")
    p.add_argument("--reports", type=Path,
                   help="where the report goes (default: reports/ once every row of all 8 systems x --seeds is "
                        "evaluated, else RUNS/report; smoke: RUNS/report)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples per comparison")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate of the Holm correction")
    p.add_argument("--discussion", type=Path, help="a person's reading of these results, appended to the report")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from finished runs")
    p.add_argument("--smoke", action="store_true",
                   help="every stage at a tiny scale on CPU: systems ttt and nar, seed 0, 30 steps, 2 items per task")
    p.add_argument("--stage", choices=("all", "train", "eval"), default="all",
                   help="train and evaluate (all), or only one: e.g. train on a GPU machine that lacks the scorer, "
                        "--bundle the models, --unbundle them here and evaluate")
    p.add_argument("--pack", type=Path, metavar="DIR",
                   help="write the data the study reads into DIR (FLAC audio; with --stage train the training "
                        "files only) to carry elsewhere, then stop")
    p.add_argument("--bundle", type=Path, metavar="DIR",
                   help="after the jobs, put trained rows not sent before into DIR as tar files (float16 weights)")
    p.add_argument("--bundle-mib", type=float, default=60.0, help="--bundle: at most this many MiB per call")
    p.add_argument("--unbundle", type=Path, nargs="+", metavar="TAR", help="unpack --bundle files into --runs, then go on")
    args = p.parse_args(argv)
    if args.smoke:
        args.systems, args.seeds = list(SMOKE_SYSTEMS), [0]
        args.steps, args.items, args.eval_interval = min(args.steps, 30), args.items or 2, args.eval_interval or 15
        args.resamples = min(args.resamples, 1000)
    args.eval_data = args.eval_data or args.data_dir / "eval_test.jsonl"
    args.runs = args.runs or Path("runs/reproduce-smoke" if args.smoke else "runs/reproduce")
    if args.smoke:
        args.reports = args.reports or args.runs / "report"
    for name in ("steps", "jobs", "threads", "resamples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    if args.items is not None and args.items < 1:
        p.error(f"--items must be at least 1, got {args.items}")
    if args.plateau < 0:
        p.error(f"--plateau must be >= 0, got {args.plateau}")
    if not 0 < args.alpha < 1:
        p.error(f"--alpha must be in (0, 1), got {args.alpha}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    start = time.monotonic()
    if args.pack is not None:
        log.info("packed into %s", pack(args.data_dir, None if args.stage == "train" else args.eval_data, args.pack))
        return 0
    if args.unbundle:
        log.info("unbundled rows %s", unbundle(args.unbundle, args.runs))
    for path in (args.config, args.data_dir / "train.jsonl", *([] if args.stage == "train" else [args.eval_data])):
        if not path.exists():
            raise SystemExit(f"reproduce: {path} not found (build the data with `ttt data build`, see docs/data.md)")
    lengths = None
    if "nar" in args.systems and args.stage != "train":
        lengths = nar_lengths(train_overrides(args), args.config, args.runs / "nar_lengths.json")
    outcome = None
    if not args.report_only:
        splits = {} if args.stage == "train" else eval_splits(args.eval_data, args.runs / "eval-data", args.items)
        jobs = [j for seed in args.seeds for s in args.systems for j in row_jobs(s, seed, args, splits, lengths)]
        deadline = None if args.time_limit is None else start + args.time_limit * 60 - 30  # 30 s for the report
        outcome = run_jobs(jobs, args.jobs, deadline)
        log.info("jobs: %s", {k: outcome.count(k) for k in ("done", "ok", "failed", "blocked", "stopped", "not started")})
    for system in args.systems:  # where every row stands, for a caller watching a time-limited call
        for seed in args.seeds:
            steps, stopped = _progress(args.runs / f"{system}-s{seed}")
            log.info("%-14s seed %d: step %s%s", system, seed, steps, f" ({stopped})" if stopped else "")
    if args.bundle is not None:
        bundle(args.runs, args.bundle, args.bundle_mib)
    if args.stage == "train":
        return 1 if outcome is not None and outcome.count("failed") else 0
    found = collect(args.runs, list(SYSTEMS), args.seeds)
    if args.reports is None:
        args.reports = report_dir(found, args.seeds, args.runs)
    report = write_report(found, args, lengths)
    log.info("report: %s", report)
    return 1 if outcome is not None and outcome.count("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
