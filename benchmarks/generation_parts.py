"""Which part of the fast engine's CPU gain comes from what: the previous engine against the fast engine with
the lean Llama/Qwen2 forward (`ttt.lean_forward`) and the deferred commits each switched off and on, CPU time
(`time.thread_time`) per audio code over a whole turn, engines alternating in one process.

    python -m benchmarks.generation_parts --size tiny        # random tiny Qwen2 (as benchmarks.generation)
    python -m benchmarks.generation_parts --size default     # the shipped model, + a spoken chat turn

The switches are not user settings: this script turns the two parts off by patching the engine for the
variants that lack them. Cases: TtT (steps 2 and 4) and AR audio speaking the benchmark's given text, and on
the shipped model the demo's spoken question answered in speech (text sampled, not given).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from importlib import resources

import torch

from benchmarks.generation import TEXT, tiny_model
from ttt.format import SYSTEM, input_audio
from ttt.generate import generate

ENGINE = sys.modules["ttt.generate"]
VARIANTS = {"eager": None, "fast, HF forward": (False, False), "fast, lean forward": (True, False),
            "fast, deferred commits": (False, True), "fast, both": (True, True)}


@contextlib.contextmanager
def variant(model, lean: bool, defer: bool):
    """The fast engine with the lean forward and/or deferred commits switched off."""
    unsupported, commit_block = ENGINE.LeanDecoder.__dict__["unsupported"], ENGINE._Sequence.commit_block
    if not lean:
        ENGINE.LeanDecoder.unsupported = staticmethod(lambda backbone: "switched off")
    if not defer:
        ENGINE._Sequence.commit_block = lambda self, block, run=True, defer=False: commit_block(self, block, run)
    model.__dict__.pop("_ttt_lean", None)
    try:
        yield
    finally:
        ENGINE.LeanDecoder.unsupported, ENGINE._Sequence.commit_block = unsupported, commit_block


def chat_messages() -> list[dict]:
    """The demo's spoken question as the shipped codec encodes it."""
    from ttt import SpeechLM
    from ttt.audio import load_audio

    lm = SpeechLM.from_dir()
    wave, sr = load_audio(resources.files("ttt") / "assets" / "demo" / "question.wav")
    return [{"role": "system", "content": SYSTEM["spoken_qa"]}, {"role": "user", "content": lm.audio_prompt(wave, sr)}]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "default"], default="tiny")
    parser.add_argument("--repeats", type=int, default=3, help="best-of-N CPU time (after one warm-up run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    variants = dict(VARIANTS)
    if args.size == "default":
        from ttt.model import TtTModel
        from ttt.speech import default_model_dir

        model = TtTModel.from_pretrained(default_model_dir(), dtype=torch.float32).eval()
        variants.pop("fast, HF forward")  # the slowest to run; on the tiny model it equals the eager engine
    else:
        model = tiny_model(1024, 256, 4)
    given = [{"role": "user", "content": input_audio(list(range(0, 100, 2)))}]
    speak = dict(force_text=TEXT, max_last_span=52, max_new_tokens=2048)
    cases = {f"TtT steps {s}, given text": ("ttt", given, dict(speak, steps=s)) for s in (2, 4)}
    cases["AR, given text"] = ("ar", given, speak)
    if args.size == "default":
        cases["TtT steps 4, spoken chat"] = ("ttt", chat_messages(), dict(steps=4, max_new_tokens=200))
    report = {}
    for label, (mode, messages, gen) in cases.items():
        model.config.mode = mode
        times: dict[str, list[float]] = {name: [] for name in variants}
        seen: dict[str, tuple] = {}
        for repeat in range(args.repeats + 1):
            for name, switches in variants.items():
                with variant(model, *switches) if switches else contextlib.nullcontext():
                    start = time.thread_time()
                    result = generate(model, messages, engine="eager" if switches is None else "fast", **gen)
                    spent = time.thread_time() - start
                if repeat:
                    times[name].append(1000 * spent / len(result.audio_codes))
                seen[name] = (result.token_ids, result.forward_passes)
        model.config.mode = "ttt"
        base = min(times["eager"])
        report[label] = {name: {"cpu_ms_per_audio_code": min(t), "over_eager": base / min(t),
                                "forwards": seen[name][1]} for name, t in times.items()}
        same = all(ids == seen["eager"][0] for ids, _ in seen.values())
        cells = ", ".join(f"{name} {min(t):.2f} ms ({base / min(t):.2f}×, {seen[name][1]} forwards)"
                          for name, t in times.items())
        print(f"{label}: {cells}; " + ("same tokens" if same else "DIFFERENT TOKENS"), flush=True)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
