"""Decoding cost of TtT (with and without the prefix cache) against AR audio decoding, in one run.

    python -m benchmarks.generation --json            # tiny random model
    python -m benchmarks.generation --model DIR       # a trained TtT model directory

All modes speak the same forced text (so every mode produces the same number of spans) with the same
backbone; only the audio decoding differs. Absolute times on a shared CPU are noise: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from ttt.training.backbones import tiny_backbone

from ttt.vocab import train_bpe_tokenizer
from ttt.format import input_audio
from ttt.generate import generate
from ttt.model import TtTModel

TEXT = (
    "the quick brown fox jumps over the lazy dog while seven plus four is eleven and the capital of "
    "france is paris, so every evening the dogs in our neighbourhood are howling at the moon"
)


def tiny_model(codebook: int, hidden: int, layers: int) -> TtTModel:
    tok = train_bpe_tokenizer([TEXT] * 20, vocab_size=600)
    backbone = tiny_backbone(len(tok) + codebook + 16, hidden_size=hidden, layers=layers, heads=4, kv_heads=2)
    return TtTModel.from_backbone(backbone, tok, audio_codebook_size=codebook).eval()


def measure(model: TtTModel, mode: str, use_cache: bool, repeats: int, **gen) -> dict:
    saved = model.config.mode
    model.config.mode = mode
    messages = [{"role": "user", "content": input_audio(list(range(0, 100, 2)))}]
    runs = []
    try:
        for _ in range(repeats):
            runs.append(generate(model, messages, use_cache=use_cache, force_text=TEXT, **gen))
    finally:
        model.config.mode = saved
    codes = [len(r.audio_codes) for r in runs]
    best = min(runs, key=lambda r: r.audio_wall_seconds)
    return {
        "audio_tokens": codes[0],
        "spans": len(runs[0].audio_spans),
        "forward_passes_per_audio_token": runs[0].audio_forward_passes / codes[0],
        "wall_seconds_per_audio_token": best.audio_wall_seconds / codes[0],
        "time_to_first_audio_s": min(r.time_to_first_audio for r in runs),
        "wall_seconds": best.wall_seconds,
        "_log": best.forward_log,
    }


def step_costs(log: list[tuple[str, int, float]], block: int) -> dict:
    """Median seconds of a denoising step (peek at a block) vs a cached forward over a clean block of the
    same size (the commit) vs one AR token."""
    peek = [t for kind, n, t in log if kind == "peek" and n == block]
    commit = [t for kind, n, t in log if kind == "commit" and n == block]
    one = [t for kind, n, t in log if kind == "commit" and n == 1]
    return {
        "diffusion_step_s": statistics.median(peek),
        "block_forward_s": statistics.median(commit),
        "ar_token_step_s": statistics.median(one),
        "diffusion_step_over_block_forward": statistics.median(peek) / statistics.median(commit),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="TtT model directory (default: a tiny random Qwen2)")
    parser.add_argument("--codebook", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per block")
    parser.add_argument("--block-length", type=int, default=26)
    parser.add_argument("--repeats", type=int, default=3, help="best-of-N timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = TtTModel.from_pretrained(args.model).eval() if args.model else tiny_model(args.codebook, args.hidden, args.layers)
    gen = {"steps": args.steps, "block_length": args.block_length, "max_last_span": 2 * args.block_length, "max_new_tokens": 2048}
    modes = {
        "ttt_cache": measure(model, "ttt", True, args.repeats, **gen),
        "ttt_nocache": measure(model, "ttt", False, args.repeats, **gen),
        "ar": measure(model, "ar", True, args.repeats, **gen),
    }
    costs = step_costs(modes["ttt_cache"]["_log"], model.config.audio_chunk + 1)
    for m in modes.values():
        del m["_log"]
    report = {
        "model": args.model or f"tiny random qwen2 (hidden {args.hidden}, {args.layers} layers, codebook {args.codebook})",
        "settings": {**gen, "threads": args.threads, "parameters": sum(p.numel() for p in model.parameters())},
        "modes": modes,
        "ar_over_ttt_forward_passes": modes["ar"]["forward_passes_per_audio_token"] / modes["ttt_cache"]["forward_passes_per_audio_token"],
        "ar_over_ttt_wall": modes["ar"]["wall_seconds_per_audio_token"] / modes["ttt_cache"]["wall_seconds_per_audio_token"],
        "nocache_over_cache_wall": modes["ttt_nocache"]["wall_seconds_per_audio_token"] / modes["ttt_cache"]["wall_seconds_per_audio_token"],
        **costs,
    }
    print(json.dumps(report, indent=None if args.json else 2))
    return report


if __name__ == "__main__":
    main()
