"""`ttt report-run RUN_DIR`: a training run's loss / validation / learning-rate curves as a PNG."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report-run", help="draw a training run's curves (loss, validation, learning rate) to a PNG",
        description="Read RUN_DIR/log.jsonl (written by `ttt train`) and draw total, text and audio loss "
                    "(training and validation) and the learning rate; `ttt train` writes the same at its end.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="PNG", help="output image (default: RUN_DIR/curves.png)")
    p.set_defaults(func=_report_run)


def _report_run(args: argparse.Namespace) -> int:
    from ttt.training.curves import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0
