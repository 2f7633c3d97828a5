"""`ttt demo`, `ttt asr`, `ttt tts`, `ttt chat`: the shipped model on speech, from the command line."""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from ttt.cli.common import check_decoding, check_output_dir, decoding, decoding_arguments, device_argument, set_threads

DEMO_QUESTION = "what is six plus three"  # the text of assets/demo/question.wav (flite voice rms)
DEMO_VOICE = "flite-rms"


def register(subparsers: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="TtT model directory (default: the shipped model)")
        p.add_argument("--codec", help="codec directory or TYPE:SOURCE, e.g. glm4voice:DIR (default: the model "
                                       "directory's codec.json, else the shipped codec)")
        decoding_arguments(p)
        p.add_argument("--threads", type=int, help="torch CPU threads")
        device_argument(p)

    demo = subparsers.add_parser(
        "demo", help="ask the shipped model a spoken question and write its spoken answer",
        description="Speak a question (a shipped wav, --wav FILE, or --say TEXT synthesized locally) into the "
                    "model; print the answer text as it streams and the time to the first audio span; write "
                    "answer.txt and answer.wav into --out.")
    src = demo.add_mutually_exclusive_group()
    src.add_argument("--wav", help="question audio file (any rate; mono or stereo)")
    src.add_argument("--say", help=f"question text to synthesize (voice --voice, default {DEMO_VOICE})")
    demo.add_argument("--voice", default=DEMO_VOICE, help="voice for --say (see ttt.corpus.voices.VOICES)")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--no-score", action="store_true", help="skip transcribing answer.wav with Whisper")
    common(demo)
    demo.set_defaults(func=_demo)

    asr = subparsers.add_parser("asr", help="transcribe a wav with the model", description="Speech -> text.")
    asr.add_argument("wav")
    common(asr)
    asr.set_defaults(func=_asr)

    tts = subparsers.add_parser("tts", help="speak a text with the model", description="Text -> speech.")
    tts.add_argument("text")
    tts.add_argument("-o", "--output", required=True, help="output wav")
    common(tts)
    tts.set_defaults(func=_tts)

    chat = subparsers.add_parser("chat", help="answer a spoken question in speech",
                                 description="Spoken question -> text + spoken answer.")
    chat.add_argument("wav")
    chat.add_argument("-o", "--output", required=True, help="output wav")
    common(chat)
    chat.set_defaults(func=_chat)


def _check(args: argparse.Namespace) -> None:
    """What can be refused before anything is read or loaded: threads, decoding flags and the output."""
    set_threads(args.threads)
    check_decoding(args)
    if getattr(args, "output", None) is not None:
        from ttt.audio.io import check_output_path

        check_output_path(args.output, "-o")


def _load(args: argparse.Namespace):
    from ttt.speech import SpeechLM

    return SpeechLM.from_dir(args.model, args.codec, device=args.device, **decoding(args))


def _read(path: str):
    from ttt.audio.io import load_audio

    return load_audio(path)


def _question(args: argparse.Namespace):
    """The demo's question wave: --wav, --say (synthesized here), or the shipped question."""
    if args.say is not None:
        from ttt.corpus.voices import get_voice

        return get_voice(args.voice).synthesize(args.say)
    return _read(args.wav or str(resources.files("ttt") / "assets" / "demo" / "question.wav"))


def _demo(args: argparse.Namespace) -> int:
    from ttt.audio.io import save_audio
    from ttt.generate import TextDelta

    out = check_output_dir(args.out)
    if args.say is not None and not args.say.strip():
        raise ValueError("--say: the question is empty")
    _check(args)
    wave, sr = _question(args)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("answer.txt", "answer.wav"):  # a failure from here on must not pair an old answer with this question
        (out / stale).unlink(missing_ok=True)
    save_audio(out / "question.wav", wave, sr)
    print(f"question: {args.wav or repr(args.say or DEMO_QUESTION)} ({len(wave) / sr:.1f} s of speech)")
    lm = _load(args)
    lm.warm_up()
    print("answer: ", end="", flush=True)
    answer = lm.chat(wave, sr, on_event=lambda e: print(e.text, end="", flush=True) if isinstance(e, TextDelta) else None)
    print()
    (out / "answer.txt").write_text(answer.text + "\n")
    if not _save_answer(out / "answer.wav", answer):
        print(f"wrote {out / 'answer.txt'}")
        return 0
    seconds = len(answer.wave) / answer.sample_rate
    print(f"time to first audio: {answer.first_audio_s:.2f} s; whole answer "
          f"{answer.result.wall_seconds:.2f} s for {seconds:.1f} s of speech")
    if not args.no_score:
        from ttt.eval.scorer import WhisperScorer

        print(f"Whisper hears in answer.wav: {WhisperScorer().transcribe(answer.wave, answer.sample_rate)!r}")
    print(f"wrote {out / 'answer.txt'} and {out / 'answer.wav'}")
    return 0


def _save_answer(path: Path, answer) -> bool:
    """Write the answer's wave; a turn without audio is reported instead (a wav cannot be empty)."""
    from ttt.audio.io import save_audio

    if len(answer.wave) == 0:
        print(f"the model produced no audio: {path} not written", file=sys.stderr)
        return False
    save_audio(path, answer.wave, answer.sample_rate)
    return True


def _asr(args: argparse.Namespace) -> int:
    _check(args)
    wave, sr = _read(args.wav)
    print(_load(args).transcribe(wave, sr))
    return 0


def _tts(args: argparse.Namespace) -> int:
    if not args.text.strip():
        raise ValueError("nothing to speak: the text is empty")
    _check(args)
    answer = _load(args).speak(args.text)
    if _save_answer(Path(args.output), answer):
        print(f"wrote {args.output} ({len(answer.wave) / answer.sample_rate:.1f} s)", file=sys.stderr)
    return 0


def _chat(args: argparse.Namespace) -> int:
    _check(args)
    wave, sr = _read(args.wav)
    answer = _load(args).chat(wave, sr)
    print(answer.text)
    _save_answer(Path(args.output), answer)
    return 0
