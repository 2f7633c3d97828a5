"""The previous decoding engine, kept unchanged as the baseline the fast engine (`ttt.generate`) is tested
and measured against: a `DynamicCache` that grows by concatenation and is cropped after each denoising step,
logits copied to the host every forward, and sampling/ranking on the host.

Select it with `generate(..., engine="eager")`; `benchmarks.generation --compare-eager` times both in one run.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Generator, Iterator

import torch
from transformers import DynamicCache

from ttt.generate import AudioSpan, GenerationConfig, GenerationResult, TextDelta, nar_steps
from ttt.masks import attention_mask_for
from ttt.model import TtTModel


class _Sequence:
    """Committed tokens with their attention runs, the KV cache over them, and forward-pass bookkeeping.

    Row 0 is the conversation; with classifier-free guidance row 1 is the same with the prompt masked.
    """

    def __init__(self, model: TtTModel, n_rows: int, first_run: int, use_cache: bool) -> None:
        self.model = model
        self.ids = torch.empty(n_rows, 0, dtype=torch.long)
        self.spans = torch.empty(n_rows, 0, dtype=torch.long)
        self.cache = DynamicCache() if use_cache else None
        self.cached = 0
        self.next_run = first_run
        self.log: list[tuple[str, int, float]] = []
        self.blind_uncond: int | None = None  # cfg_context "all": row 1 commits this (the mask) for every token

    @property
    def forwards(self) -> int:
        return len(self.log)

    def _forward(self, ids: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """Logits for the last `ids.shape[1]` positions of (committed + ids)."""
        new = ids.shape[1]
        all_ids = torch.cat([self.ids, ids], 1)
        all_spans = torch.cat([self.spans, spans], 1)
        start = self.cached if self.cache is not None else 0
        dev = self.model.device
        out = self.model.backbone(
            input_ids=all_ids[:, start:].to(dev),
            attention_mask=attention_mask_for(
                self.model.backbone,
                torch.zeros_like(all_spans).to(dev),
                all_spans.to(dev),
                q_len=all_ids.shape[1] - start,
            ),
            position_ids=torch.arange(start, all_ids.shape[1], device=dev).expand(all_ids.shape[0], -1),
            cache=self.cache,
            use_cache=self.cache is not None,
            logits_to_keep=new,
        )
        return out.logits.float().cpu()

    def peek(self, ids: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """Logits of a block against the prefix; the cache is left as it was."""
        t0 = time.perf_counter()
        logits = self._forward(ids, spans)
        if self.cache is not None:
            self.cache.crop(-ids.shape[1])
        self.log.append(("peek", ids.shape[1], time.perf_counter() - t0))
        return logits

    def commit(self, ids: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """Append clean tokens (their keys/values enter the cache); returns their logits."""
        t0 = time.perf_counter()
        if self.blind_uncond is not None:  # the unguided row sees only masks before the block it denoises
            ids = torch.cat([ids[:1], torch.full_like(ids[1:], self.blind_uncond)])
        logits = self._forward(ids, spans)
        self.log.append(("commit", ids.shape[1], time.perf_counter() - t0))
        self.ids = torch.cat([self.ids, ids], 1)
        self.spans = torch.cat([self.spans, spans], 1)
        self.cached = self.ids.shape[1]
        return logits

    def run_ids(self, length: int, advance: bool = True) -> torch.Tensor:
        """Span ids for a new block: one fresh attention run (`advance=False` for a peek at it)."""
        run = torch.full((self.ids.shape[0], length), self.next_run, dtype=torch.long)
        self.next_run += advance
        return run

    def commit_block(self, block: torch.Tensor, run: bool = True) -> torch.Tensor:
        """Commit a 1-D block (as its own attention run, or causal text); returns row 0's last logits."""
        rows = block.expand(self.ids.shape[0], -1)
        spans = self.run_ids(block.numel()) if run else torch.zeros_like(rows)
        return self.commit(rows, spans)[0, -1]


def _sample(logits: torch.Tensor, cfg: GenerationConfig, generator: torch.Generator) -> int:
    """One token from 1-D logits: greedy at temperature 0, else top-k / top-p sampling."""
    if cfg.temperature == 0:
        return int(logits.argmax())
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > cfg.top_p
        logits[order[drop]] = -math.inf
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


def _denoise(
    seq: _Sequence,
    block: torch.Tensor,
    allowed: torch.Tensor,
    stop_id: int | None,
    cfg: GenerationConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Fill the masks of a 1-D block; returns it cut after the first committed `stop_id` (if any).

    A stop token may only be committed once every position before it is filled, so confidence ranking
    can never end a span ahead of the codes it follows; and masks after the first predicted stop are
    left alone, because in training such positions are loss-free padding (`TtTConfig.last_span_pad`):
    committing guesses there would show the model audio after its own end.
    """
    mask_id = seq.model.vocab.mask
    steps_left = cfg.steps
    while True:
        masked = block == mask_id
        if not masked.any():
            return block
        logits = seq.peek(block.expand(seq.ids.shape[0], -1), seq.run_ids(block.numel(), advance=False))
        if logits.shape[0] == 2:
            logits = logits[1] + (1.0 + cfg.cfg_scale) * (logits[0] - logits[1])
        else:
            logits = logits[0]
        logits = logits.double().masked_fill(~allowed, -math.inf)
        if cfg.diffusion_temperature > 0:
            u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).clamp_min(1e-20)
            noisy = logits / cfg.diffusion_temperature - torch.log(-torch.log(u))
            pred = noisy.argmax(-1)
        else:
            pred = logits.argmax(-1)
        probs = logits.softmax(-1)
        if stop_id is not None and cfg.stop_threshold is not None:
            pred = torch.where(probs[:, stop_id] >= cfg.stop_threshold, stop_id, pred)
        conf = probs.gather(-1, pred[:, None]).squeeze(-1)
        conf = conf.masked_fill(~masked, -math.inf)
        if stop_id is not None:
            before = masked.long().cumsum(0) - masked.long()
            conf = conf.masked_fill((pred == stop_id) & (before > 0), -math.inf)
            ends = (masked & (pred == stop_id)).nonzero()
            if ends.numel():
                conf[int(ends[0]) + 1 :] = -math.inf
        n = math.ceil(int(masked.sum()) / max(steps_left, 1))
        if cfg.threshold is not None:
            n = max(1, int((conf > cfg.threshold).sum()))
        n = min(n, int(torch.isfinite(conf).sum()))
        chosen = torch.topk(conf, n).indices
        block = block.clone()
        block[chosen] = pred[chosen]
        steps_left -= 1
        if stop_id is not None and (block == stop_id).any():
            block = block[: int((block == stop_id).nonzero()[0]) + 1]


class EagerGeneration:
    """One assistant turn, the previous way: iterate for events."""

    def __init__(self, model: TtTModel, messages: list[dict], **kwargs) -> None:
        cfg = GenerationConfig(**kwargs)
        cfg.check(model.config.audio_chunk, model.config)
        self.model, self.cfg, self.vocab = model, cfg, model.vocab
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.result = GenerationResult("", [], [])
        ids = torch.arange(model.backbone.get_output_embeddings().weight.shape[0])
        v = self.vocab
        self.is_code = v.is_code(ids)
        self.codes_or_stop = self.is_code | (ids == v.end_of_last_span)
        forbidden = torch.tensor([v.mask, v.end_of_span, v.end_of_last_span, v.end_of_audio, v.im_start])
        self.text_ok = ~self.is_code & ~torch.isin(ids, forbidden) & (ids < len(model.tokenizer))
        self.stop_ids = {v.im_end} | ({model.tokenizer.eos_token_id} - {None})
        self.text_ids: list[int] = []
        self.messages = messages
        self.start = time.perf_counter()

    def _now(self) -> float:
        return time.perf_counter() - self.start

    def _text(self, token: int) -> TextDelta:
        before = self.model.tokenizer.decode(self.text_ids)
        self.text_ids.append(token)
        return TextDelta(self.model.tokenizer.decode(self.text_ids)[len(before):], [token], self._now())

    def _audio(self, tokens: list[int], last: bool, closed: bool) -> AudioSpan:
        """The event for newly committed audio tokens, added to the current span of the result."""
        codes = [t - self.vocab.audio_start for t in tokens if self.is_code[t]]
        self.result.audio_spans[-1] += codes
        return AudioSpan(codes, len(self.result.audio_spans) - 1, last, self._now(), closed)

    def _prefill(self, messages: list[dict]) -> torch.Tensor:
        model, mode = self.model, self.model.config.mode
        prompt = model.formatter.encode_prompt(messages)
        context = getattr(model.backbone.config, "max_position_embeddings", None)
        if context is not None and len(prompt) >= context:
            raise ValueError(f"prompt has {len(prompt)} tokens but the model's context is {context}")
        self.context = context or math.inf
        rows = prompt.input_ids[None]
        if self.cfg.cfg_scale > 0:
            header = len(model.formatter.assistant_header()) if self.cfg.cfg_context == "prompt" else 0
            uncond = torch.full_like(prompt.input_ids, self.vocab.mask)
            uncond[len(uncond) - header:] = prompt.input_ids[len(uncond) - header:]
            rows = torch.stack([prompt.input_ids, uncond])
        spans = prompt.span.long()[None].expand(rows.shape[0], -1)
        if mode == "ar":
            spans = torch.zeros_like(spans)
        self.seq = _Sequence(model, rows.shape[0], int(spans.max()) + 1, self.cfg.use_cache)
        if self.cfg.cfg_scale > 0 and self.cfg.cfg_context == "all":
            self.seq.blind_uncond = self.vocab.mask
        return self.seq.commit(rows, spans)[0, -1]

    def __iter__(self) -> Iterator[TextDelta | AudioSpan]:
        with torch.no_grad():
            logits = self._prefill(self.messages)
            if self.model.config.mode == "nar":
                yield from self._nar()
            else:
                yield from self._interleaved(logits)
        r = self.result
        r.text = self.model.tokenizer.decode(self.text_ids)
        r.forward_passes = self.seq.forwards
        r.forward_log = self.seq.log
        r.wall_seconds = self._now()

    def _forced_tokens(self) -> list[int]:
        """The token queue for `force_text`: text chunks, each followed by its span's opening token."""
        if not self.cfg.force_text:
            return []
        ids = self.model.tokenizer(self.cfg.force_text, add_special_tokens=False)["input_ids"]
        n = self.model.config.text_chunk
        chunks = [ids[i : i + n] for i in range(0, len(ids), n)]
        v = self.vocab
        opener = [v.begin_of_audio] * (len(chunks) - 1) + [v.begin_of_last_span]
        return [t for chunk, o in zip(chunks, opener) for t in chunk + [o]] + [v.im_end]

    def _interleaved(self, logits: torch.Tensor) -> Iterator[TextDelta | AudioSpan]:
        r, v = self.result, self.vocab
        forced = self._forced_tokens()
        while len(r.token_ids) < self.cfg.max_new_tokens and self.seq.ids.shape[1] < self.context - 1:
            if forced:
                token = forced.pop(0)
            else:
                token = _sample(logits.masked_fill(~self.text_ok, -math.inf), self.cfg, self.generator)
            r.token_ids.append(token)
            if token in self.stop_ids:
                return
            logits = self.seq.commit_block(torch.tensor([token]), run=False)
            if token not in (v.begin_of_audio, v.begin_of_last_span):
                yield self._text(token)
                continue
            logits = yield from self._audio_span(logits, token == v.begin_of_last_span)

    def _audio_span(self, logits: torch.Tensor, last: bool) -> Generator[AudioSpan, None, torch.Tensor]:
        """One audio span (codes + closing token), yielded as it is committed; returns the logits after it.

        Forward passes and compute time are counted per piece, so the consumer's time between pieces
        (vocoding, playback) is not charged to audio generation."""
        v, cfg, seq, r = self.vocab, self.cfg, self.seq, self.result
        chunk = self.model.config.audio_chunk
        closer = v.end_of_last_span if last else v.end_of_span
        allowed = self.codes_or_stop if last else self.is_code
        cap = min(cfg.max_last_span, int(self.context - seq.ids.shape[1] - 2)) if last else chunk
        r.audio_spans.append([])
        n_codes, closed, pending = 0, False, []
        while not closed:
            before, t0 = seq.forwards, time.perf_counter()
            if self.model.config.mode == "ar":
                token = closer if n_codes >= cap else _sample(
                    logits.masked_fill(~allowed, -math.inf), cfg, self.generator)
                tokens = [token]
                logits = seq.commit_block(torch.tensor(tokens), run=False)
                closed = token == closer
            elif not last:
                block = torch.full((chunk + 1,), v.mask)
                block[-1] = closer
                tokens = _denoise(seq, block, allowed, None, cfg, self.generator).tolist()
                logits, closed = seq.commit_block(torch.tensor(tokens)), True
            else:
                block = torch.full((min(cfg.block_length, cap - n_codes),), v.mask)
                tokens = _denoise(seq, block, allowed, closer, cfg, self.generator).tolist()
                logits = seq.commit_block(torch.tensor(tokens))
                closed = tokens[-1] == closer
                if not closed and n_codes + len(tokens) >= cap:
                    tokens.append(closer)
                    logits, closed = seq.commit_block(torch.tensor([closer]), run=False), True
            n_codes += sum(t != closer for t in tokens)
            r.audio_forward_passes += seq.forwards - before
            r.audio_wall_seconds += time.perf_counter() - t0
            r.token_ids += tokens
            pending += tokens
            if closed or self.model.config.mode != "ar":  # AR spans go to the vocoder whole
                yield self._audio(pending, last, closed)
                pending = []
        return logits

    def _nar(self) -> Iterator[TextDelta | AudioSpan]:
        """NAR baseline: the whole response is one diffused block that ends at a committed `<|im_end|>`.

        It gets the tokens-per-step rate of TtT's audio blocks (`steps` per `block_length`), not `steps`
        for the whole response, so the baseline is not starved of denoising steps."""
        r, v, seq = self.result, self.vocab, self.seq
        length = int(min(self.cfg.nar_length or self.cfg.max_new_tokens, self.context - seq.ids.shape[1]))
        cfg = replace(self.cfg, steps=nar_steps(length, self.cfg))
        everything = torch.ones_like(self.text_ok)
        t0 = time.perf_counter()
        block = _denoise(seq, torch.full((length,), v.mask), everything, v.im_end, cfg, self.generator)
        r.audio_wall_seconds = time.perf_counter() - t0
        r.token_ids = block.tolist()
        r.audio_forward_passes = seq.forwards - 1
        span: list[int] = []
        for token in r.token_ids:
            if self.is_code[token]:
                span.append(token)
            elif token in v.span_closers and span:
                r.audio_spans.append([])
                yield self._audio(span, token == v.end_of_last_span, True)
                span = []
            elif self.text_ok[token] and token not in self.stop_ids:
                yield self._text(token)
        if span:
            r.audio_spans.append([])
            yield self._audio(span, True, True)
