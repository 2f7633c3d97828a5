"""`ttt eval`: score a TtT model on an eval JSONL file (every task it holds) and write a report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ttt.cli.common import check_decoding, check_output_dir, decoding, decoding_arguments, device_argument, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a model on eval JSONL (ASR, TTS, spoken QA, text QA)",
        description="Run every task in --data through the model; write metrics.json, items.jsonl, "
                    "report.md and PNG plots into --out. Malformed lines are reported (file:line) and "
                    "skipped. Metric definitions: docs/evaluation.md.")
    p.add_argument("--model", help="TtT model directory (default: the shipped model)")
    p.add_argument("--data", required=True, help="eval JSONL, e.g. data/built/eval_test.jsonl")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    p.add_argument("--limit", type=int, help="evaluate only the first N valid items")
    p.add_argument("--per-task", type=int, metavar="N", help="evaluate only the first N valid items of each task")
    p.add_argument("--codec", help="codec directory (default: the shipped codec)")
    decoding_arguments(p)  # its --seed also seeds the bootstrap of the confidence intervals
    device_argument(p)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--save-audio", action="store_true",
                   help="keep each generated answer as OUT/audio/<item id>.wav, linked from items.jsonl and report.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-dnsmos", action="store_true",
                   help="leave the DNSMOS quality columns empty (on CPU, a large share of the time of a spoken item)")
    p.add_argument("--reference-cache", metavar="FILE",
                   help="keep the scorer's transcripts of the data's reference recordings in FILE (JSON) and reuse "
                        "them in later evals of the same data (same results; ~2.6 CPU-s per reference saved)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="decode up to N consecutive ASR / text-QA items together (same outputs; default: 8)")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from ttt.eval.report import write_report
    from ttt.eval.harness import SPEECH_TASKS, Evaluator, read_items, run, select, summarize
    from ttt.config import is_model_dir
    from ttt.speech import SpeechLM, default_model_dir

    set_threads(args.threads)
    check_decoding(args, max_new_tokens=args.max_new_tokens)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_output_dir(args.out)  # before the evaluation, whose results would otherwise be lost
    if not args.model and not is_model_dir(default_model_dir()):
        raise FileNotFoundError(f"no shipped default model in {default_model_dir()} yet; pass --model DIR")
    items, skipped = read_items(args.data)
    items = select(items, args.limit, args.per_task)
    lm = SpeechLM.from_dir(args.model, args.codec, device=args.device, **decoding(args))
    seed = lm.generation.get("seed", 0)
    scorer = None
    if any(i.task in SPEECH_TASKS for i in items):
        from ttt.eval.scorer import WhisperScorer

        scorer = WhisperScorer(cpu_threads=args.threads)
        lm.warm_up()  # timings are of a running model, not of the first call in this process
    audio_dir = Path(args.out) / "audio" if args.save_audio else None
    evaluator = Evaluator(lm, scorer, audio_dir=audio_dir, dnsmos=not args.no_dnsmos,
                          reference_cache=args.reference_cache if scorer is not None else None)
    rows = run(evaluator, items, skipped, progress=not args.no_progress, batch_size=args.batch_size)
    metrics = summarize(rows, skipped, seed=seed)
    config = {"model": args.model or str(default_model_dir()), "data": args.data, "codec": args.codec or "shipped",
              "decoding": lm.generation, "device": str(lm.model.device), "limit": args.limit,
              "per_task": args.per_task, "dnsmos": not args.no_dnsmos}
    report = write_report(args.out, metrics, rows, skipped, config)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{sum(len(r) for r in rows.values())} items scored, {len(skipped)} lines skipped; report: {report}")
    return 0
