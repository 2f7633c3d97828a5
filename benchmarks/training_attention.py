"""Training-step cost of the TtT attention mask: plain causal vs the mask as a dense 4D SDPA mask vs a Flex
`BlockMask`, at several row lengths, in one run.

    python -m benchmarks.training_attention --device cuda --dtype bfloat16 --size 0.5b   # the issue's table
    python -m benchmarks.training_attention --smoke                                       # CPU, seconds

Rows pack 4 examples; each example is an input-audio run, then text chunks each followed by a 27-token
audio span (its own bidirectional run), as `ttt train` sees them. A step is forward + backward through
`TtTModel.backbone_forward` (the call training uses) and an optimizer-free gradient; "plain causal" is the
same backbone with no mask (SDPA's causal kernel). `ttt train` picks the rendering by row length from
`ttt.training.loop.FLEX_FROM_TOKENS`; this table is what that number should come from.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.generation import DTYPES, QWEN_SHAPES, QWEN_VOCAB
from ttt.masks import attention_mask_for

EXAMPLES_PER_ROW = 4


def packed_row(length: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """doc_ids, span_ids and position_ids (1, length) of a row packing `EXAMPLES_PER_ROW` examples."""
    doc = torch.empty(length, dtype=torch.long)
    span = torch.zeros(length, dtype=torch.long)
    pos = torch.empty(length, dtype=torch.long)
    per = length // EXAMPLES_PER_ROW
    run = 1
    for d in range(EXAMPLES_PER_ROW):
        lo, hi = d * per, (length if d == EXAMPLES_PER_ROW - 1 else (d + 1) * per)
        doc[lo:hi] = d
        pos[lo:hi] = torch.arange(hi - lo)
        prompt = min(hi - lo, max(8, (hi - lo) // 4))
        span[lo : lo + prompt] = run  # the user's input audio, bidirectional
        run += 1
        i = lo + prompt + 4  # then 4 text tokens and a 27-token span, repeated
        while i < hi:
            span[i : min(i + 27, hi)] = run
            run += 1
            i += 27 + 4
    return doc[None].to(device), span[None].to(device), pos[None].to(device)


def build(size: str, attn: str, device: str, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size == "tiny":
        shape, vocab = (64, 2, 4, 2, 256), 2048
    else:
        shape, vocab = QWEN_SHAPES[size], QWEN_VOCAB
    hidden, layers, heads, kv_heads, inter = shape
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=32768,
                         tie_word_embeddings=True)
    config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        return Qwen2ForCausalLM(config).to(dtype).train()


def step_time(backbone, variant: str, length: int, device: str, steps: int) -> dict:
    """Median seconds of forward + backward, and peak memory, for one rendering at one row length."""
    doc, span, pos = packed_row(length, device)
    ids = torch.randint(0, backbone.config.vocab_size, (1, length), device=device)
    labels = torch.randint(0, backbone.config.vocab_size, (1, length), device=device)
    times = []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 2):  # two warm-up steps
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if variant == "causal":  # plain positions too: packed ones would make transformers build a mask
            mask, positions = None, torch.arange(length, device=device)[None]
        else:
            mask, positions = attention_mask_for(backbone, doc, span), pos
        out = backbone(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
        loss = torch.nn.functional.cross_entropy(out.logits.float().flatten(0, 1), labels.flatten())
        loss.backward()
        backbone.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"step_s": statistics.median(times), "peak_gib": peak}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", *QWEN_SHAPES], default="0.5b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per cell (after 2 warm-up steps)")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU, short rows, one step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.device, args.dtype, args.lengths, args.steps = "tiny", "cpu", "float32", [128, 256], 1
    dtype = DTYPES[args.dtype]
    variants = {"causal": "sdpa", "ttt_dense": "sdpa", "ttt_flex": "flex_attention"}
    table: dict[str, dict] = {}
    for variant, attn in variants.items():
        backbone = build(args.size, attn, args.device, dtype)
        for length in args.lengths:
            try:
                table.setdefault(variant, {})[length] = step_time(backbone, variant, length, args.device, args.steps)
            except Exception as err:  # noqa: BLE001 - a rendering this device lacks is a table cell, not a crash
                table.setdefault(variant, {})[length] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
        del backbone
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = [f"training step (fwd+bwd), {args.size} shape, {args.dtype}, rows of {EXAMPLES_PER_ROW} examples, {device}",
             "", "| rendering | " + " | ".join(f"{n} tokens" for n in args.lengths) + " |",
             "|---" * (len(args.lengths) + 1) + "|"]
    for variant in variants:
        cells = []
        for n in args.lengths:
            cell, base = table[variant][n], table["causal"][n]
            if "error" in cell:
                cells.append("n/a")
            elif "error" in base:
                cells.append(f"{cell['step_s'] * 1000:.1f} ms")
            else:
                mem = f", {cell['peak_gib']:.1f} GiB" if cell["peak_gib"] is not None else ""
                cells.append(f"{cell['step_s'] * 1000:.1f} ms ({cell['step_s'] / base['step_s']:.2f}×{mem})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    best = {n: min(("ttt_dense", "ttt_flex"), key=lambda v: table[v][n].get("step_s", float("inf")))
            for n in args.lengths}
    lines += ["", "faster TtT rendering per length: " + ", ".join(f"{n}: {v}" for n, v in best.items())]
    if not args.json:
        print("\n".join(lines))
    report = {"size": args.size, "device": device, "dtype": args.dtype, "table": table, "faster": best}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
