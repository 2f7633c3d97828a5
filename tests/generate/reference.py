"""A deliberately plain reference decoder for tests: greedy TtT decoding that recomputes the whole
sequence with the dense training mask for every forward (no cache, no shared code with the engine's loop).

`final_span="cached"` gives each final-span block its own attention run (what a KV cache of committed
blocks shows the model); `"official"` keeps the whole final span one run, its earlier blocks recomputed with
each new block, as the reference inference does."""
from __future__ import annotations

import math

import torch

from ttt.masks import dense_mask


def _logits(model, ids: list[int], spans: list[int], n: int) -> torch.Tensor:
    s = torch.tensor([spans])
    out = model.backbone(
        input_ids=torch.tensor([ids]),
        attention_mask=dense_mask(torch.zeros_like(s), s),
        position_ids=torch.arange(len(ids))[None],
    )
    return out.logits[0, -n:].double()


def _fill(model, ids, spans, run, block, allowed, stop, steps, earlier=()):
    mask = model.vocab.mask
    left = steps
    earlier = list(earlier)
    while mask in block:
        lg = _logits(model, ids + earlier + block, spans + [run] * (len(earlier) + len(block)), len(block))
        lg[:, ~allowed] = -math.inf
        pred = lg.argmax(-1)
        conf = lg.softmax(-1).gather(-1, pred[:, None]).squeeze(-1)
        candidates = []
        first_end = next((j for j, tok in enumerate(block) if tok == mask and int(pred[j]) == stop), len(block))
        for j, tok in enumerate(block):
            if tok != mask or j > first_end:
                continue
            if stop is not None and int(pred[j]) == stop and mask in block[:j]:
                continue
            candidates.append((float(conf[j]), j))
        n = min(math.ceil(block.count(mask) / max(left, 1)), len(candidates))
        for _, j in sorted(candidates, key=lambda c: -c[0])[:n]:
            block[j] = int(pred[j])
        left -= 1
        if stop is not None and stop in block:
            block = block[: block.index(stop) + 1]
    return block


@torch.no_grad()
def reference_generate(
    model, messages, max_new_tokens: int, block_length: int, steps: int, final_span: str = "cached"
) -> list[int]:
    v = model.vocab
    prompt = model.formatter.encode_prompt(messages)
    ids, spans = prompt.input_ids.tolist(), prompt.span.tolist()
    run = max(spans) + 1
    n_vocab = model.backbone.get_output_embeddings().weight.shape[0]
    codes = torch.tensor([v.audio_start <= i < v.audio_start + v.codebook_size for i in range(n_vocab)])
    text_ok = ~codes
    for bad in (v.mask, v.end_of_span, v.end_of_last_span, v.end_of_audio, v.im_start):
        text_ok[bad] = False
    text_ok[len(model.tokenizer):] = False
    out: list[int] = []
    while len(out) < max_new_tokens:
        lg = _logits(model, ids, spans, 1)[0]
        lg[~text_ok] = -math.inf
        tok = int(lg.argmax())
        out.append(tok)
        if tok in (v.im_end, model.tokenizer.eos_token_id):
            break
        ids, spans = ids + [tok], spans + [0]
        if tok == v.begin_of_audio:
            block = _fill(model, ids, spans, run, [v.mask] * model.config.audio_chunk + [v.end_of_span], codes, None, steps)
            ids, spans, run, out = ids + block, spans + [run] * len(block), run + 1, out + block
        elif tok == v.begin_of_last_span:
            allowed = codes.clone()
            allowed[v.end_of_last_span] = True
            span: list[int] = []
            while True:
                earlier = span if final_span == "official" else []
                block = _fill(model, ids, spans, run, [v.mask] * block_length, allowed, v.end_of_last_span, steps,
                              earlier)
                out += block
                if final_span == "official":
                    span += block
                else:
                    ids, spans, run = ids + block, spans + [run] * len(block), run + 1
                if block[-1] == v.end_of_last_span:
                    break
            ids, spans, run = ids + span, spans + [run] * len(span), run + 1
    return out
