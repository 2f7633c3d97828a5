"""Decoding cost of TtT (steps 2 and 4, with and without the prefix cache) against AR audio decoding, in one
run, for the fast engine and (with `--compare-eager`) the previous one.

    python -m benchmarks.generation                                        # tiny random model, CPU
    python -m benchmarks.generation --size default --compare-eager         # the shipped model, old vs new
    python -m benchmarks.generation --device cuda --dtype bfloat16 --size 0.5b   # Qwen2.5-0.5B shape
    python -m benchmarks.generation --size default --compare-eager --compile none inductor  # + torch.compile
    python -m benchmarks.generation --smoke                                # seconds: every path once

Sizes: `tiny` (random Qwen2, hidden 256, 4 layers), `default` (the shipped model), `0.5b` / `1.5b`
(random weights in the shapes of Qwen2.5-0.5B / 1.5B: their layers, heads and 151,936-token vocabulary,
16,384 audio codes), or `--model DIR`. Every mode speaks the same forced text, so every mode produces the
same spans; only the audio decoding differs. Figures are the best of `--repeats` timed runs after one
warm-up run (which captures CUDA graphs / compiles). On a shared CPU read the ratios, not the times.
"""
from __future__ import annotations

import argparse
import json
import time

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

# Qwen2.5 shapes (hidden, layers, heads, kv heads, intermediate), vocabulary 151,936, tied embeddings.
QWEN_SHAPES = {"0.5b": (896, 24, 14, 2, 4864), "1.5b": (1536, 28, 12, 2, 8960)}
QWEN_VOCAB = 151936
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tiny_model(codebook: int, hidden: int, layers: int) -> TtTModel:
    tok = train_bpe_tokenizer([TEXT] * 20, vocab_size=600)
    backbone = tiny_backbone(len(tok) + codebook + 16, hidden_size=hidden, layers=layers, heads=4, kv_heads=2)
    return TtTModel.from_backbone(backbone, tok, audio_codebook_size=codebook).eval()


def qwen_shaped_model(size: str, device: str, dtype: torch.dtype) -> TtTModel:
    """Random weights in a Qwen2.5 shape, built directly on `device` (no download, no checkpoint)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hidden, layers, heads, kv_heads, inter = QWEN_SHAPES[size]
    config = Qwen2Config(
        vocab_size=QWEN_VOCAB, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=32768,
        tie_word_embeddings=True, rope_theta=1000000.0,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        backbone = Qwen2ForCausalLM(config).to(dtype)
    tok = train_bpe_tokenizer([TEXT] * 20, vocab_size=600)
    return TtTModel.from_backbone(backbone, tok, audio_codebook_size=16384).eval()


def load_model(args: argparse.Namespace) -> tuple[TtTModel, str]:
    dtype = DTYPES[args.dtype]
    if args.model or args.size == "default":
        from ttt.speech import default_model_dir

        directory = args.model or default_model_dir()
        model = TtTModel.from_pretrained(directory, dtype=dtype).to(args.device).eval()
        return model, str(directory)
    if args.size in QWEN_SHAPES:
        return qwen_shaped_model(args.size, args.device, dtype), f"random Qwen2.5-{args.size.upper()} shape"
    hidden, layers = (64, 2) if args.smoke else (256, 4)
    model = tiny_model(args.codebook, hidden, layers).to(device=args.device, dtype=dtype)
    return model, f"tiny random qwen2 (hidden {hidden}, {layers} layers, codebook {args.codebook})"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(model: TtTModel, mode: str, repeats: int, device: str, engines: dict[str, dict], **gen) -> dict:
    """Best-of-`repeats` figures of one decoding mode for each engine (name -> extra settings), after a
    warm-up run each; the engines take turns, so a shared machine's load changes hit them alike.
    `cpu_ms_per_audio_token` is this thread's CPU time for the whole turn per audio code: on a busy CPU
    it moves far less than wall time."""
    saved = model.config.mode
    model.config.mode = mode
    messages = [{"role": "user", "content": input_audio(list(range(0, 100, 2)))}]
    runs: dict[str, list] = {name: [] for name in engines}
    try:
        for _ in range(repeats + 1):
            for name, extra in engines.items():
                synchronize(device)
                cpu = time.thread_time()
                result = generate(model, messages, force_text=TEXT, **gen, **extra)
                synchronize(device)
                runs[name].append((result, time.thread_time() - cpu))
    finally:
        model.config.mode = saved
    out = {}
    for name, timed in runs.items():
        timed = timed[1:]
        first = timed[0][0]
        codes = len(first.audio_codes)
        best = min((r for r, _ in timed), key=lambda r: r.audio_wall_seconds)
        out[name] = {
            "audio_tokens": codes,
            "spans": len(first.audio_spans),
            "forward_passes_per_audio_token": first.audio_forward_passes / codes,
            "ms_per_audio_token": 1000 * best.audio_wall_seconds / codes,
            "cpu_ms_per_audio_token": 1000 * min(c for _, c in timed) / codes,
            "time_to_first_audio_s": min(r.time_to_first_audio for r, _ in timed),
            "wall_seconds": best.wall_seconds,
            "token_ids": first.token_ids,
        }
    return out


def engine_names(compiles: list[str] | None, compare_eager: bool) -> list[str]:
    """"fast" (the engine's default forwards), "fast/<compile>" for each of several `--compile` values, and
    "eager" (the previous engine) with `--compare-eager`."""
    fast = [f"fast/{c}" for c in compiles] if compiles else ["fast"]
    return fast + (["eager"] if compare_eager else [])


def engine_settings(name: str) -> dict:
    """`generate` keyword arguments of an engine name from `engine_names`."""
    engine, _, compile = name.partition("/")
    return {"engine": engine, **({"compile": compile} if compile else {})}


def engine_tables(model: TtTModel, engines: list[str], steps: list[int], args: argparse.Namespace) -> dict:
    """Per engine, per mode ("ar", "ttt_s{steps}", "ttt_s{steps}_nocache"), the figures of `measure`."""
    gen = {"block_length": args.block_length, "max_last_span": 2 * args.block_length, "max_new_tokens": 2048}
    settings = {e: engine_settings(e) for e in engines}
    modes = {"ar": ("ar", min(steps), True)}
    for s in steps:
        modes[f"ttt_s{s}"] = ("ttt", s, True)
        modes[f"ttt_s{s}_nocache"] = ("ttt", s, False)
    rows: dict[str, dict] = {e: {} for e in engines}
    for label, (mode, s, cache) in modes.items():
        for engine, figures in measure(model, mode, args.repeats, args.device, settings, steps=s, use_cache=cache,
                                       **gen).items():
            rows[engine][label] = figures
        # each mode as soon as it is measured, in case a time limit cuts the run
        print(json.dumps({label: {e: round(rows[e][label]["ms_per_audio_token"], 3) for e in engines}}), flush=True)
    return rows


def summary(row: dict, steps: list[int]) -> dict:
    out = {"ar_ms_per_audio_token": row["ar"]["ms_per_audio_token"],
           "ar_cpu_ms_per_audio_token": row["ar"].get("cpu_ms_per_audio_token")}
    for s in steps:
        out[f"ttt_ms_per_audio_token_steps{s}"] = row[f"ttt_s{s}"]["ms_per_audio_token"]
        out[f"ttt_cpu_ms_per_audio_token_steps{s}"] = row[f"ttt_s{s}"].get("cpu_ms_per_audio_token")
        out[f"cache_speedup_steps{s}"] = row[f"ttt_s{s}_nocache"]["ms_per_audio_token"] / row[f"ttt_s{s}"]["ms_per_audio_token"]
    top = f"ttt_s{max(steps)}"
    out["ar_over_ttt_wall"] = row["ar"]["ms_per_audio_token"] / row[top]["ms_per_audio_token"]
    out["time_to_first_audio_s"] = row[top]["time_to_first_audio_s"]
    return out


def markdown(name: str, device: str, summaries: dict[str, dict], steps: list[int]) -> str:
    cols = ["AR ms/audio token"] + [f"TtT ms/audio token (steps {s})" for s in steps]
    cols += [f"cache speed-up (steps {s})" for s in steps] + ["AR/TtT wall", "time to first audio"]
    lines = [f"{name} on {device}", "", "| engine | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for engine, s in summaries.items():
        cells = [f"{s['ar_ms_per_audio_token']:.2f}"] + [f"{s[f'ttt_ms_per_audio_token_steps{k}']:.2f}" for k in steps]
        cells += [f"{s[f'cache_speedup_steps{k}']:.2f}×" for k in steps]
        cells += [f"{s['ar_over_ttt_wall']:.1f}×", f"{s['time_to_first_audio_s']:.3f} s"]
        lines.append(f"| {engine} | " + " | ".join(cells) + " |")
    fast_engines = [name for name in summaries if name.startswith("fast")]
    if "eager" in summaries and fast_engines:
        e = summaries["eager"]
        lines.append("")
        for name in fast_engines:
            f = summaries[name]

            def cpu_cell(key: str) -> str:
                return f"{e[key]:.2f} -> {f[key]:.2f} ms ({e[key] / f[key]:.2f}×)"

            ratios = ", ".join(
                f"steps {k} {e[f'ttt_ms_per_audio_token_steps{k}'] / f[f'ttt_ms_per_audio_token_steps{k}']:.2f}×"
                for k in steps)
            lines.append(f"{name} over eager, TtT per audio token: {ratios}; AR "
                         f"{e['ar_ms_per_audio_token'] / f['ar_ms_per_audio_token']:.2f}×")
            if f.get("ar_cpu_ms_per_audio_token"):
                cpu = ", ".join(f"steps {k} " + cpu_cell(f"ttt_cpu_ms_per_audio_token_steps{k}") for k in steps)
                lines.append(f"host CPU time per audio code over the whole turn, eager -> {name}: {cpu}; AR "
                             + cpu_cell("ar_cpu_ms_per_audio_token"))
        if device.startswith("CPU") and e.get("ar_cpu_ms_per_audio_token"):  # the fast engine defers commits there
            lines.append("(the ms/audio token columns time the audio spans only, and on CPU the fast engine runs "
                         "the given text's tokens inside their forwards: the whole-turn line compares like with like)")
    return "\n".join(lines)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "default", *QWEN_SHAPES], default="tiny")
    parser.add_argument("--model", help="a TtT model directory (overrides --size)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--codebook", type=int, default=1024, help="tiny model's audio codebook")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 4], help="denoising steps per block")
    parser.add_argument("--block-length", type=int, default=26)
    parser.add_argument("--repeats", type=int, default=3, help="best-of-N timing (after one warm-up run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", choices=["graphs", "inductor", "none"], nargs="+",
                        help="the fast engine's forwards (default: graphs on CUDA, none on CPU); several values "
                             "time the fast engine once with each, in the same run")
    parser.add_argument("--compare-eager", action="store_true", help="also time the previous engine")
    parser.add_argument("--smoke", action="store_true", help="a 2-layer model, one repeat: checks every path")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    torch.set_num_threads(args.threads)
    model, name = load_model(args)
    engines = engine_names(args.compile, args.compare_eager)
    rows = engine_tables(model, engines, args.steps, args)
    for engine in engines[1:]:  # the engines must decode the same tokens for the comparison to mean anything
        for mode in rows[engines[0]]:
            if rows[engine][mode]["token_ids"] != rows[engines[0]][mode]["token_ids"]:
                print(f"note: {mode}: the {engines[0]} and {engine} engines decoded different tokens")
    for row in rows.values():
        for m in row.values():
            del m["token_ids"]
    summaries = {engine: summary(row, args.steps) for engine, row in rows.items()}
    report = {
        "model": name,
        "device": device_name(args.device),
        "settings": {"dtype": args.dtype, "block_length": args.block_length, "threads": args.threads,
                     "compile": args.compile, "parameters": sum(p.numel() for p in model.parameters())},
        "summary": summaries,
        "modes": rows,
    }
    if not args.json:
        print(markdown(name, report["device"], summaries, args.steps))
    print(json.dumps(report, indent=None if args.json else 2) if args.json else json.dumps(summaries))
    return report


if __name__ == "__main__":
    main()
