"""`ttt model-card` and `ttt push`: a model directory's hub card, and its upload (`ttt.hub`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    card = subparsers.add_parser(
        "model-card", help="write a model directory's README.md (hub model card)",
        description="Write MODEL_DIR/README.md: hub metadata and text from the directory's configs and "
                    "decoding.json, plus a training run's config and a `ttt eval` report's figures.")
    card.add_argument("model_dir", metavar="MODEL_DIR")
    card.add_argument("--run", metavar="RUN_DIR", help="training run folder (its config.yaml and log.jsonl)")
    card.add_argument("--eval", metavar="REPORT_DIR", help="`ttt eval --out` folder (its metrics.json)")
    card.add_argument("--name", help="model name in the card, e.g. the hub id (default: the folder's name)")
    card.set_defaults(func=_card)
    push = subparsers.add_parser(
        "push", help="upload a model directory to the Hugging Face hub",
        description="Upload MODEL_DIR to hub repo REPO_ID (created if absent), with a model card. Needs a "
                    "network and a token (`hf auth login` or HF_TOKEN).")
    push.add_argument("model_dir", metavar="MODEL_DIR")
    push.add_argument("repo_id", metavar="REPO_ID", help="e.g. my-org/ttt-small")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.set_defaults(func=_push)


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected the {what})")
    return json.loads(path.read_text())


def _card(args: argparse.Namespace) -> int:
    import yaml

    from ttt.hub import training_summary, write_model_card

    training = metrics = None
    if args.run:
        config_path = Path(args.run) / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no such file (expected the run's config)")
        log_path = Path(args.run) / "log.jsonl"
        steps = None
        if log_path.is_file():
            steps = max((json.loads(line).get("step", 0) for line in log_path.read_text().splitlines() if line.strip()),
                        default=None)
        training = training_summary(yaml.safe_load(config_path.read_text()), steps)
    if args.eval:
        metrics = _read(Path(args.eval) / "metrics.json", "`ttt eval` metrics")
    print(write_model_card(args.model_dir, training=training, metrics=metrics, name=args.name))
    return 0


def _push(args: argparse.Namespace) -> int:
    from ttt.hub import push_to_hub

    print(push_to_hub(args.model_dir, args.repo_id, private=args.private or None))
    return 0
