"""Hybrid generation: AR text with a KV cache, block-wise diffusion for audio spans, streamed as events.

Text is sampled token by token. On `<|begin_of_audio|>` a fixed span of `audio_chunk` masks (+ its closing
token) is denoised; on `<|begin_of_quad|>` blocks of `block_length` masks are denoised one after another
until a committed `<|end_of_audio_span_last|>` ends the span. Each step commits the most confident
predictions (LLaDA low-confidence remasking; or all above `threshold`, Fast-dLLM style). A block attends
to itself both ways and to the cached prefix; denoising steps never advance the cache, and a finished block
is run once more, clean, to append its keys/values — the cache is exact because the prefix never attends
forward. Each committed block is its own attention run (block-wise generation sees no later block), so
inside the final span attention is block-causal: exact for a model trained that way
(`TtTConfig.final_span_attention="block_causal"`); `final_span="official"` instead re-runs the span's
earlier blocks with each new block as one run, as the reference inference (and bidirectional training) has it.

Models trained with `mode="ar"` decode audio token by token (one forward per code) and `mode="nar"`
models diffuse the whole response as one block; all three share this loop.

The engine (docs/decoding.md): the committed tokens, their attention runs and a pre-allocated KV cache live
on the model's device (`_Sequence`: prefill / peek / commit); every forward goes through
`TtTModel.backbone_forward`, the same call training uses, or for Llama/Qwen2 backbones its lean equivalent
(`ttt.lean_forward`), and a commit whose output nothing reads runs with the next forward; logits are
projected only onto the tokens a step may produce (`_Head`), and sampling, confidence ranking and the
commit schedule are tensor operations on the device (`_denoise`), so the host waits only where a decision
must reach Python: a text token (its event, a stop) and a finished block (its codes, whether the span
closed). `engine="eager"` runs the previous engine (`ttt.generate_eager`), kept as the baseline this one is
tested and measured against.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Generator, Iterator

import torch
from torch import nn
from transformers.cache_utils import Cache, StaticLayer

from ttt.config import GenerationConfig
from ttt.lean_forward import LeanDecoder
from ttt.model import TtTModel

log = logging.getLogger(__name__)


@dataclass
class TextDelta:
    """New assistant text, as soon as its token is sampled; `time` in seconds since generation began."""

    text: str
    token_ids: list[int]
    time: float


@dataclass
class AudioSpan:
    """New audio of span `index`, ready for the vocoder; `last` marks the final variable-length span.

    A fixed span arrives whole. The final span arrives one diffused block at a time, so a short answer
    (all of it in the final span) starts playing after its first block, not at its end; `closed` marks
    the event that ends its span."""

    codes: list[int]
    index: int
    last: bool
    time: float
    closed: bool = True


@dataclass
class GenerationResult:
    """One assistant turn. `audio_wall_seconds` is the time spent producing audio spans (compute, not the
    length of the audio); `forward_log` holds (kind, tokens, seconds) for every model call."""

    text: str
    audio_spans: list[list[int]]
    token_ids: list[int]
    events: list = field(default_factory=list)
    forward_passes: int = 0
    audio_forward_passes: int = 0
    audio_wall_seconds: float = 0.0
    wall_seconds: float = 0.0
    forward_log: list[tuple[str, int, float]] = field(default_factory=list)
    cut_by_context: bool = False  # the model's context filled up before the turn ended (a warning says what was cut)

    @property
    def audio_codes(self) -> list[int]:
        return [c for span in self.audio_spans for c in span]

    @property
    def time_to_first_audio(self) -> float | None:
        return next((e.time for e in self.events if isinstance(e, AudioSpan)), None)


class _PrefixLayer(StaticLayer):
    """A pre-allocated cache layer that gives attention only its first `visible` slots.

    On a CPU, attending over the whole pre-allocated length would cost more than the model; on a GPU the
    full length (plain `StaticLayer`) keeps every shape fixed, which CUDA graphs need."""

    visible: int = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        return keys[:, :, : self.visible], values[:, :, : self.visible]


class _Sequence:
    """Committed tokens with their attention runs and a pre-allocated KV cache over them, on the device.

    Row 0 is the conversation; with classifier-free guidance row 1 is the same with the prompt masked
    (`cfg_context` "prompt"), or with every committed token masked ("all").
    `ids`/`spans` hold `capacity` slots: the first `length` are committed, the block being decoded sits
    right after them (a peek writes its keys/values there and then rewinds the cache, so the next step
    overwrites them; a commit keeps them and advances `length`).

    A commit whose hidden state nobody reads (a forced text token, an audio opener, a block the span goes on
    after) can be deferred (`commit_block(..., defer=True)`): its tokens are written but run with the next
    forward, which then covers `computed:length` before its own block. Same mask, same keys/values, one
    forward (one read of the weights) fewer. Only where shapes may vary (not with a fixed-shape window).
    """

    def __init__(
        self, model: TtTModel, n_rows: int, first_run: int, capacity: int, use_cache: bool, compile: str
    ) -> None:
        self.model = model
        dev = model.device
        self.full_window = use_cache and _static_shapes(dev, compile)
        if self.full_window:  # a stable size, so that one cache (and its graphs) serves many turns
            capacity = -(-capacity // 256) * 256
        self.ids = torch.zeros(n_rows, capacity, dtype=torch.long, device=dev)
        self.spans = torch.zeros(n_rows, capacity, dtype=torch.long, device=dev)
        self.positions = torch.arange(capacity, device=dev)
        self.length = 0
        self.computed = 0  # committed tokens whose keys/values are in the cache (`length` less deferred ones)
        self.deferred = 0  # commits folded into a later forward
        self.cache = _static_cache(model, n_rows, capacity, self.full_window) if use_cache else None
        self.eager = _eager_decoder(model)
        self.decoder = _decoder(model, compile, dynamic=not self.full_window) if use_cache else self.eager
        self.next_run = first_run
        self.log: list[tuple[str, int, float]] = []
        self.blind_uncond: int | None = None  # cfg_context "all": row 1 commits this (the mask) for every token

    @property
    def forwards(self) -> int:
        return len(self.log)

    @property
    def capacity(self) -> int:
        return self.ids.shape[1]

    def _write(self, ids: torch.Tensor, spans: torch.Tensor) -> int:
        """Place `ids` after the committed tokens; returns where they end."""
        start, end = self.length, self.length + ids.shape[1]
        if end > self.capacity:
            raise RuntimeError(f"decoding needs {end} positions but the cache holds {self.capacity}")
        self.ids[:, start:end] = ids
        self.spans[:, start:end] = spans
        return end

    def _forward(self, ids: torch.Tensor, spans: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """Final hidden states (rows, new, H) of `ids` placed after the committed tokens (deferred ones run
        first, in the same forward); `eager` skips the graphed/compiled forward (for lengths that change
        every block, which would each need their own)."""
        end = self._write(ids, spans)
        new, start = ids.shape[1], self.computed
        rows = self.ids.shape[0]
        if self.cache is None:  # recompute everything, as a check on the cache
            doc = torch.zeros(rows, end, dtype=torch.long, device=ids.device)
            pos = self.positions[:end].expand(rows, -1)
            return self.decoder(self.ids[:, :end], doc, self.spans[:, :end], pos, None, None)[:, -new:]
        pos = self.positions[start:end].expand(rows, -1)
        decoder = self.decoder if start and not eager else self.eager  # the prompt's length varies: no graph for it
        if self.full_window:  # fixed shapes: every slot is a key, unwritten ones belong to no document
            doc = torch.where(self.positions < end, 0, -1).expand(rows, -1)
            offset = self.positions[start]
            return decoder(ids, doc, self.spans, pos, offset, self.cache)
        for layer in self.cache.layers:
            layer.visible = end
        doc = torch.zeros(rows, end, dtype=torch.long, device=ids.device)
        return decoder(self.ids[:, start:end], doc, self.spans[:, :end], pos, None, self.cache)[:, -new:]

    def peek(self, ids: torch.Tensor, spans: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """Hidden states of a block against the prefix; the cache is left as it was."""
        t0 = time.perf_counter()
        hidden = self._forward(ids, spans, eager)
        if self.cache is not None:
            self.cache.crop(-ids.shape[1])
        self.log.append(("peek", self.length + ids.shape[1] - self.computed, time.perf_counter() - t0))
        self.computed = self.length
        return hidden

    def commit(self, ids: torch.Tensor, spans: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """Append clean tokens (their keys/values enter the cache); returns row 0's last hidden state."""
        t0 = time.perf_counter()
        hidden = self._forward(self._blinded(ids), spans, eager)[0, -1]
        self.length += ids.shape[1]
        self.log.append(("commit", self.length - self.computed, time.perf_counter() - t0))
        self.computed = self.length
        return hidden

    def _blinded(self, ids: torch.Tensor) -> torch.Tensor:
        """Committed ids as each row keeps them: with `blind_uncond`, the unguided row sees only masks
        before the block it denoises."""
        if self.blind_uncond is None:
            return ids
        return torch.cat([ids[:1], torch.full_like(ids[1:], self.blind_uncond)])

    def run_ids(self, length: int, advance: bool = True) -> torch.Tensor:
        """Span ids for a new block: one fresh attention run (`advance=False` for a peek at it)."""
        run = torch.full((self.ids.shape[0], length), self.next_run, dtype=torch.long, device=self.ids.device)
        self.next_run += advance
        return run

    def commit_block(self, block: torch.Tensor, run: bool = True, defer: bool = False,
                     eager: bool = False) -> torch.Tensor | None:
        """Commit a 1-D block (as its own attention run, or causal text); returns row 0's last hidden state,
        or None if `defer` and this sequence defers (the block then runs with the next forward)."""
        rows = block.expand(self.ids.shape[0], -1)
        spans = self.run_ids(block.numel()) if run else torch.zeros_like(rows)
        if defer and not self.full_window:
            self.length = self._write(self._blinded(rows), spans)
            self.deferred += 1
            return None
        return self.commit(rows, spans, eager)


def _static_shapes(device: torch.device, compile: str) -> bool:
    """Whether the cache window is the full pre-allocated length (fixed shapes, for CUDA graphs) rather than
    the written prefix (cheaper where nothing is graph-captured)."""
    return compile == "graphs" or (compile == "inductor" and device.type == "cuda")


def _static_cache(model: TtTModel, rows: int, capacity: int, reuse: bool) -> Cache:
    """A pre-allocated KV cache, rewound to empty. With `reuse` (fixed shapes) the same buffers serve every
    turn of that size, so graphs captured on them stay valid."""
    n_layers = model.backbone.config.get_text_config(decoder=True).num_hidden_layers
    if not reuse:
        return Cache(layers=[_PrefixLayer(max_cache_len=capacity) for _ in range(n_layers)])
    pool = model.__dict__.setdefault("_ttt_caches", {}).setdefault((rows, capacity, model.backbone.dtype, model.device), [])
    cache = next((c for c in pool if not c.ttt_busy), None)
    if cache is None:  # the first turn of this size, or one running beside another (streams interleaved)
        cache = Cache(layers=[StaticLayer(max_cache_len=capacity) for _ in range(n_layers)])
        pool.append(cache)
    for layer in cache.layers:
        if layer.is_initialized:
            layer.cumulative_length.zero_()
    cache.ttt_busy = True
    return cache


def _eager_decoder(model: TtTModel):
    """The decoding forward to final hidden states (no LM head), not graph-captured: the lean Llama/Qwen2
    forward (`ttt.lean_forward`: the same arithmetic in fewer operations) where the backbone allows
    it, else `TtTModel.backbone_forward`, the call training uses."""
    if LeanDecoder.unsupported(model.backbone) is None:
        lean = model.__dict__.get("_ttt_lean")
        if lean is None or lean.body is not model.backbone.get_decoder():
            lean = model.__dict__["_ttt_lean"] = LeanDecoder(model.backbone)
        return lean

    def decoder(ids, doc, spans, pos, offset, cache):
        return model.backbone_forward(ids, doc, spans, pos, q_offset=offset, cache=cache, hidden_only=True)

    return decoder


def _decoder(model: TtTModel, compile: str, dynamic: bool):
    """The forward used after the prompt: eager, CUDA-graphed or compiled; made once per model and kind."""
    if compile in (None, "none"):
        return _eager_decoder(model)
    made = model.__dict__.setdefault("_ttt_decoders", {})
    key = (compile, dynamic)
    if key not in made:
        made[key] = _GraphedDecoder(model) if compile == "graphs" else _InductorDecoder(model, dynamic)
    return made[key]


class _FallbackDecoder:
    """A faster rendering of the decoding forward that turns into the eager one, with a warning, the first
    time it fails."""

    what = "acceleration"

    def __init__(self, model: TtTModel) -> None:
        self.eager = _eager_decoder(model)
        self.broken = False

    def __call__(self, *args):
        if not self.broken:
            try:
                return self.fast(*args)
            except Exception as err:  # noqa: BLE001 - whatever the backend raises, decoding goes on eagerly
                first = str(err).splitlines()[0] if str(err) else ""
                warnings.warn(f"{self.what} of the decoding forward failed ({type(err).__name__}: {first}); "
                              "decoding eagerly")
                self.broken = True
        return self.eager(*args)

    def fast(self, *args):
        raise NotImplementedError


class _InductorDecoder(_FallbackDecoder):
    """`torch.compile(mode="reduce-overhead")` of the decoding forward. With a full-window cache every
    shape is fixed, so each block length is compiled (and on CUDA graph-captured) on first use; with a
    prefix window the key length changes every step, so one graph with symbolic lengths serves them all.
    Of the lean forward only the layers are compiled: its host-side checks (fresh weights, a step that needs
    no mask) stay outside, where they would otherwise split the graph at every step.

    On CPU only the one-token step (AR and text decoding) runs compiled: there it saves the dispatch of
    ~25 operations per layer and fuses each projection into one mat-vec pass (`lean_forward._linear`; AR
    audio of the shipped model 1.8x faster than uncompiled), while a block of several tokens ran about 1.1x
    slower compiled than eagerly (benchmarks.generation, docs/decoding.md)."""

    what = "torch.compile"

    def __init__(self, model: TtTModel, dynamic: bool) -> None:
        super().__init__(model)
        options = {"mode": "reduce-overhead", "dynamic": dynamic}
        lean = isinstance(self.eager, LeanDecoder)
        self.compiled = self.eager.compiled(**options) if lean else torch.compile(self.eager, **options)
        self.blocks_eagerly = model.device.type == "cpu"

    def fast(self, ids, *rest):
        if self.blocks_eagerly and ids.shape[1] != 1:
            return self.eager(ids, *rest)
        return self.compiled(ids, *rest)


class _GraphedDecoder(_FallbackDecoder):
    """The decoding forward captured as one CUDA graph per shape (rows, block length, cache) and replayed:
    one launch per forward instead of one per kernel, which is what bounds a small model's step on a GPU.
    Inputs are copied into the graph's own buffers; the cache's buffers are fixed (`_static_cache`)."""

    what = "CUDA graph capture"

    def __init__(self, model: TtTModel) -> None:
        super().__init__(model)
        self.graphs: dict = {}
        self.pool = None

    def fast(self, ids, doc, spans, pos, offset, cache):
        if ids.device.type != "cuda":
            raise RuntimeError(f"CUDA graphs need a CUDA device, not {ids.device.type}")
        key = (tuple(ids.shape), tuple(spans.shape), id(cache))
        if key not in self.graphs:
            self.graphs[key] = self._capture((ids, doc, spans, pos, offset), cache)
        inputs, out, graph = self.graphs[key]
        for buffer, value in zip(inputs, (ids, doc, spans, pos, offset)):
            buffer.copy_(value)
        graph.replay()
        return out.clone()

    def _capture(self, args: tuple, cache: Cache):
        static = tuple(a.clone() for a in args)
        lengths = [layer.cumulative_length.clone() for layer in cache.layers]

        def rewind():  # warm-up and capture advance the cache like a real forward; undo that
            for layer, n in zip(cache.layers, lengths):
                layer.cumulative_length.copy_(n)

        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.eager(*static, cache)
                    rewind()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            self.pool = self.pool or torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self.pool):
                out = self.eager(*static, cache)
        finally:
            rewind()
        return static, out, graph


class _Head:
    """The LM head restricted to the tokens a step may produce: logits (float32) over `ids` only.

    Decoding an audio block needs the codes (and the stop token), not the whole vocabulary; projecting onto
    those rows alone is exact (the same dot products) and, for a Qwen-sized vocabulary, most of the head's
    cost saved. `ids=None` keeps the whole vocabulary."""

    def __init__(self, model: TtTModel, ids: torch.Tensor | None) -> None:
        head = model.backbone.get_output_embeddings()
        self.ids = ids
        with torch.no_grad():
            self.weight = head.weight if ids is None else head.weight[ids]
            bias = getattr(head, "bias", None)
            self.bias = bias if bias is None or ids is None else bias[ids]
        self.size = self.weight.shape[0]
        self._rows: dict[int, int] = {}

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(hidden, self.weight, self.bias).float()

    def token(self, local: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids of local (row) indices."""
        return local if self.ids is None else self.ids[local]

    def local(self, token: int) -> int:
        """The row of vocabulary id `token` (it must be one of `ids`)."""
        if self.ids is None:
            return token
        if token not in self._rows:  # asked once per head and token: one wait for the device
            self._rows[token] = int((self.ids == token).nonzero()[0])
        return self._rows[token]


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


def _after_first(flags: torch.Tensor) -> torch.Tensor:
    """True at every position strictly after the first True of a 1-D bool tensor."""
    count = flags.long().cumsum(0)
    return (count - flags.long()) > 0


def _denoise(
    seq: _Sequence,
    block: torch.Tensor,
    head: _Head,
    stop_id: int | None,
    cfg: GenerationConfig,
    generator: torch.Generator,
    sync_every_step: bool,
    earlier: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill the masks of a 1-D block; returns it cut after the first committed `stop_id` (if any).

    `earlier` (committed tokens not in the cache) are run before the block, in its attention run, at every
    step: the final span's earlier blocks under `final_span="official"`. Those forwards run eagerly, as
    their length grows block by block (no CUDA graph or compiled shape for each).

    A stop token may only be committed once every position before it is filled, so confidence ranking
    can never end a span ahead of the codes it follows; and masks after the first predicted stop are
    left alone, because in training such positions are loss-free padding (`TtTConfig.last_span_pad`):
    committing guesses there would show the model audio after its own end.

    Everything stays on the device: the block keeps its length and a `live` flag marks the positions the
    cut has not removed (once a stop is committed every position before it is filled, so no step ever
    runs with removed positions still masked). Unless `sync_every_step`, the first `cfg.steps` steps run
    without asking the host whether masks remain (they fill a block whose stop comes no earlier than its
    schedule; a step on a filled block commits nothing), so the host waits once per block.
    """
    mask_id = seq.model.vocab.mask
    length = block.numel()
    dev = block.device
    live = torch.ones(length, dtype=torch.bool, device=dev)
    stop_row = head.local(stop_id) if stop_id is not None else None
    run = seq.run_ids(length + (0 if earlier is None else earlier.numel()), advance=False)
    arange = torch.arange(length, device=dev)
    done = 0
    while True:
        masked = (block == mask_id) & live
        must_check = sync_every_step or done >= cfg.steps or cfg.threshold is not None
        if must_check and not bool(masked.any()):
            return block[live]
        ids = block if earlier is None else torch.cat([earlier, block])
        hidden = seq.peek(ids.expand(seq.ids.shape[0], -1), run, eager=earlier is not None and earlier.numel() > 0)
        logits = head(hidden[:, -length:])
        if logits.shape[0] == 2:
            logits = logits[1] + (1.0 + cfg.cfg_scale) * (logits[0] - logits[1])
        else:
            logits = logits[0]
        logits = logits.double()
        if cfg.diffusion_temperature > 0:
            u = torch.rand(logits.shape, generator=generator, dtype=torch.float64, device=dev).clamp_min(1e-20)
            pred = (logits / cfg.diffusion_temperature - torch.log(-torch.log(u))).argmax(-1)
        else:
            pred = logits.argmax(-1)
        probs = logits.softmax(-1)
        if stop_row is not None and cfg.stop_threshold is not None:
            pred = torch.where(probs[:, stop_row] >= cfg.stop_threshold, stop_row, pred)
        conf = probs.gather(-1, pred[:, None]).squeeze(-1).masked_fill(~masked, -math.inf)
        if stop_row is not None:
            ends = masked & (pred == stop_row)
            before = masked.long().cumsum(0) - masked.long()
            conf = conf.masked_fill((ends & (before > 0)) | _after_first(ends), -math.inf)
        if cfg.threshold is not None:
            n = (conf > cfg.threshold).sum().clamp(min=1)
        else:
            left = max(cfg.steps - done, 1)
            n = (masked.sum() + left - 1) // left
        n = torch.minimum(n, torch.isfinite(conf).sum())
        order = torch.sort(conf, descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(0, order, arange)
        block = torch.where(rank < n, head.token(pred), block)
        done += 1
        if stop_id is not None:
            live = live & ~_after_first((block == stop_id) & live)


def _without_grad(events: Iterator) -> Iterator:
    """Run a generator's steps under `torch.no_grad` without holding the mode across its yields: the
    consumer's code between events keeps its own mode, and streams advanced in turn cannot restore each
    other's modes in the wrong order (which would leave gradients off for the whole process)."""
    while True:
        with torch.no_grad():
            try:
                event = next(events)
            except StopIteration:
                return
        yield event


def nar_steps(length: int, cfg: GenerationConfig) -> int:
    """Denoising steps for a NAR response of `length` tokens: TtT's `steps / block_length` rate."""
    return max(1, math.ceil(length * cfg.steps / cfg.block_length))


def stream(model: TtTModel, messages: list[dict], **kwargs) -> Iterator[TextDelta | AudioSpan]:
    """Generate the assistant turn for `messages`, yielding text deltas and closed audio spans in order.

    Keyword arguments are `GenerationConfig` fields; `generate` collects the same into a result, and
    iterating a `Generation` gives both (events as they come, `.result` at the end).
    """
    yield from Generation(model, messages, **kwargs)


def generate(model: TtTModel, messages: list[dict], **kwargs) -> GenerationResult:
    """Generate the assistant turn for `messages` (see `stream`): text, audio spans, events and costs."""
    gen = Generation(model, messages, **kwargs)
    gen.result.events = list(gen)
    return gen.result


class Generation:
    """One assistant turn: iterate for events; the text loop, and audio spans by diffusion (ttt), token by
    token (ar) or as one diffused response (nar). `engine="eager"` gives the previous engine's object."""

    def __new__(cls, model: TtTModel, messages: list[dict], **kwargs):
        if kwargs.get("engine") == "eager":
            from ttt.generate_eager import EagerGeneration

            return EagerGeneration(model, messages, **kwargs)
        return super().__new__(cls)

    def __init__(self, model: TtTModel, messages: list[dict], **kwargs) -> None:
        cfg = GenerationConfig(**kwargs)
        cfg.check(model.config.audio_chunk, model.config)
        self.model, self.cfg, self.vocab = model, cfg, model.vocab
        dev = model.device
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        self.sync_every_step = dev.type == "cpu" if cfg.sync_every_step is None else cfg.sync_every_step
        self.compile = cfg.compile or ("graphs" if dev.type == "cuda" else "none")
        self.result = GenerationResult("", [], [])
        ids = torch.arange(model.backbone.get_output_embeddings().weight.shape[0])
        v = self.vocab
        self.is_code = v.is_code(ids)
        forbidden = torch.tensor([v.mask, v.end_of_span, v.end_of_last_span, v.end_of_audio, v.im_start])
        self.text_ok = (~self.is_code & ~torch.isin(ids, forbidden) & (ids < len(model.tokenizer))).to(dev)
        codes = ids[self.is_code]
        self.heads = {
            "text": _Head(model, None),
            "codes": _Head(model, codes.to(dev)),
            "codes_or_stop": _Head(model, torch.cat([codes, torch.tensor([v.end_of_last_span])]).to(dev)),
        }
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

    def _sample_text(self, hidden: torch.Tensor) -> int:
        logits = self.heads["text"](hidden).masked_fill(~self.text_ok, -math.inf)
        return _sample(logits, self.cfg, self.generator)

    def _capacity(self, prompt_len: int) -> int:
        """Cache slots this turn can need: the prompt, `max_new_tokens` (the loop checks it before each text
        token), a final span that may overrun it, and the largest block a step writes past the end."""
        cfg, chunk = self.cfg, self.model.config.audio_chunk
        if self.model.config.mode == "nar":
            return prompt_len + (cfg.nar_length or cfg.max_new_tokens)
        need = prompt_len + cfg.max_new_tokens + cfg.max_last_span + 2 + max(cfg.block_length, chunk + 1)
        return int(min(need, self.context + max(cfg.block_length, chunk + 1) + 2))

    def _prefill(self, messages: list[dict]) -> torch.Tensor:
        model, mode = self.model, self.model.config.mode
        prompt = model.formatter.encode_prompt(messages)
        context = getattr(model.backbone.config, "max_position_embeddings", None)
        if context is not None and len(prompt) >= context:
            raise ValueError(f"prompt has {len(prompt)} tokens but the model's context is {context}")
        trained = model.config.max_length
        if trained is not None and len(prompt) >= trained:
            log.warning("the prompt has %d tokens but this model was trained on sequences of at most %d "
                        "(ttt_config max_length): expect a poor answer to an input this long", len(prompt), trained)
        self.context = context or math.inf
        if self.cfg.force_text:
            self._check_forced_fits(len(prompt))
        rows = prompt.input_ids[None]
        if self.cfg.cfg_scale > 0:
            header = len(model.formatter.assistant_header()) if self.cfg.cfg_context == "prompt" else 0
            uncond = torch.full_like(prompt.input_ids, self.vocab.mask)
            uncond[len(uncond) - header:] = prompt.input_ids[len(uncond) - header:]
            rows = torch.stack([prompt.input_ids, uncond])
        spans = prompt.span.long()[None].expand(rows.shape[0], -1)
        if mode == "ar":
            spans = torch.zeros_like(spans)
        dev = model.device
        self.seq = _Sequence(
            model, rows.shape[0], int(spans.max()) + 1, self._capacity(rows.shape[1]), self.cfg.use_cache,
            self.compile,
        )
        if self.cfg.cfg_scale > 0 and self.cfg.cfg_context == "all":
            self.seq.blind_uncond = self.vocab.mask
        return self.seq.commit(rows.to(dev), spans.to(dev))

    def __iter__(self) -> Iterator[TextDelta | AudioSpan]:
        try:
            yield from _without_grad(self._events())
        finally:  # a pooled cache is free again, even when the consumer stops early
            if getattr(self, "seq", None) is not None and self.seq.cache is not None:
                self.seq.cache.ttt_busy = False
        r = self.result
        r.text = self.model.tokenizer.decode(self.text_ids)
        r.forward_passes = self.seq.forwards
        r.forward_log = self.seq.log
        r.wall_seconds = self._now()

    def _events(self) -> Iterator[TextDelta | AudioSpan]:
        hidden = self._prefill(self.messages)
        if self.model.config.mode == "nar":
            yield from self._nar()
        else:
            yield from self._interleaved(hidden)

    def _check_forced_fits(self, prompt_length: int) -> None:
        """Refuse, before any work, a text to speak whose tokens and fixed spans (plus the shortest final
        span) cannot fit in the context: spoken in part, it would be silently cut."""
        forced = self._forced_tokens()
        chunk = self.model.config.audio_chunk
        fixed_spans = forced.count(self.vocab.begin_of_audio)
        need = prompt_length + len(forced) + fixed_spans * (chunk + 1) + 2  # + one code and the closing token
        if need > self.context:
            text_tokens = len(forced) - fixed_spans - 2
            raise ValueError(
                f"the text to speak is too long for this model: its {text_tokens} tokens need {need} positions with "
                f"their speech and the prompt, but the context holds {self.context}; split it into shorter parts")

    def _fits(self, token: int) -> bool:
        """Whether the context has room for `token` and what it opens: a whole fixed span, or a final span
        of at least one code; if not, the turn ends here with a warning (`_context_full`)."""
        v, room = self.vocab, self.context - self.seq.length
        need = {v.begin_of_audio: self.model.config.audio_chunk + 2, v.begin_of_last_span: 4}.get(token, 1)
        if room >= need:
            return True
        self._context_full()
        return False

    def _context_full(self) -> None:
        self.result.cut_by_context = True
        log.warning("the model's context of %d tokens is full: the answer was cut after %d generated tokens "
                    "(text so far: %r)", self.context, len(self.result.token_ids),
                    self.model.tokenizer.decode(self.text_ids)[-60:])

    def _forced_tokens(self) -> list[int]:
        """The token queue for `force_text`: text chunks, each followed by its span's opening token."""
        if not self.cfg.force_text:
            return []
        ids = self.model.tokenizer(self.cfg.force_text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        n = self.model.config.text_chunk
        chunks = [ids[i : i + n] for i in range(0, len(ids), n)]
        v = self.vocab
        opener = [v.begin_of_audio] * (len(chunks) - 1) + [v.begin_of_last_span]
        return [t for chunk, o in zip(chunks, opener) for t in chunk + [o]] + [v.im_end]

    def _block(self, tokens: list[int]) -> torch.Tensor:
        return torch.tensor(tokens, device=self.model.device)

    def _interleaved(self, hidden: torch.Tensor) -> Iterator[TextDelta | AudioSpan]:
        r, v = self.result, self.vocab
        forced = self._forced_tokens()
        while len(r.token_ids) < self.cfg.max_new_tokens:
            token = forced.pop(0) if forced else self._sample_text(hidden)
            if token in self.stop_ids:
                r.token_ids.append(token)
                return
            if not self._fits(token):
                return
            r.token_ids.append(token)
            opens = token in (v.begin_of_audio, v.begin_of_last_span)
            unread = (opens and self.model.config.mode != "ar") or (bool(forced) and not opens)  # by the next step
            hidden = self.seq.commit_block(self._block([token]), run=False, defer=unread)
            if not opens:
                yield self._text(token)
                continue
            hidden = yield from self._audio_span(hidden, token == v.begin_of_last_span, unread_after=bool(forced))

    def _audio_span(
        self, hidden: torch.Tensor | None, last: bool, unread_after: bool = False
    ) -> Generator[AudioSpan, None, torch.Tensor | None]:
        """One audio span (codes + closing token), yielded as it is committed; returns the hidden state after
        it (None if `unread_after`: the caller's next token is forced, so that commit may be deferred).

        Forward passes and compute time are counted per piece, so the consumer's time between pieces
        (vocoding, playback) is not charged to audio generation."""
        v, cfg, seq, r = self.vocab, self.cfg, self.seq, self.result
        chunk = self.model.config.audio_chunk
        closer = v.end_of_last_span if last else v.end_of_span
        head = self.heads["codes_or_stop" if last else "codes"]
        cap = min(cfg.max_last_span, int(self.context - seq.length - 2)) if last else chunk
        # final_span="official": the span's blocks stay out of the cache until it closes, and are re-run with
        # each new block as one run; then the whole span enters the cache as one run (as training lays it out)
        official = last and cfg.final_span == "official"
        span = torch.zeros(0, dtype=torch.long, device=self.model.device)
        r.audio_spans.append([])
        n_codes, closed, pending = 0, False, []
        while not closed:
            before, t0 = seq.forwards, time.perf_counter()
            if self.model.config.mode == "ar":
                token = closer if n_codes >= cap else int(head.token(torch.tensor(_sample(head(hidden), cfg, self.generator))))
                tokens = [token]
                closed = token == closer
                hidden = seq.commit_block(self._block(tokens), run=False, defer=closed and unread_after)
            elif not last:
                block = torch.full((chunk + 1,), v.mask, device=self.model.device)
                block[-1] = closer
                filled = self._denoise(block, head, None)
                hidden, closed = seq.commit_block(filled, defer=unread_after), True
                tokens = filled.tolist()
            else:
                block = torch.full((min(cfg.block_length, cap - n_codes),), v.mask, device=self.model.device)
                filled = self._denoise(block, head, closer, earlier=span if official else None)
                tokens = filled.tolist()
                closed = tokens[-1] == closer
                if official:
                    span = torch.cat([span, filled])
                else:
                    hidden = seq.commit_block(filled, defer=unread_after or not closed)  # a next block reads no hidden
                if not closed and n_codes + len(tokens) >= cap:
                    if cap < cfg.max_last_span:
                        self._context_full()
                    tokens.append(closer)
                    if official:
                        span, closed = torch.cat([span, self._block([closer])]), True
                    else:
                        hidden, closed = seq.commit_block(self._block([closer]), run=False, defer=unread_after), True
                if official and closed:
                    hidden = seq.commit_block(span, defer=unread_after, eager=True)
            n_codes += sum(t != closer for t in tokens)
            r.audio_forward_passes += seq.forwards - before
            r.audio_wall_seconds += time.perf_counter() - t0
            r.token_ids += tokens
            pending += tokens
            if closed or self.model.config.mode != "ar":  # AR spans go to the vocoder whole
                yield self._audio(pending, last, closed)
                pending = []
        return hidden

    def _denoise(self, block: torch.Tensor, head: _Head, stop_id: int | None, cfg: GenerationConfig | None = None,
                 earlier: torch.Tensor | None = None):
        return _denoise(self.seq, block, head, stop_id, cfg or self.cfg, self.generator, self.sync_every_step, earlier)

    def _nar(self) -> Iterator[TextDelta | AudioSpan]:
        """NAR baseline: the whole response is one diffused block that ends at a committed `<|im_end|>`.

        It gets the tokens-per-step rate of TtT's audio blocks (`steps` per `block_length`), not `steps`
        for the whole response, so the baseline is not starved of denoising steps. The block holds
        `nar_length` tokens (default `max_new_tokens`), at most what the context has left."""
        r, v, seq = self.result, self.vocab, self.seq
        length = int(min(self.cfg.nar_length or self.cfg.max_new_tokens, self.context - seq.length))
        cfg = replace(self.cfg, steps=nar_steps(length, self.cfg))
        t0 = time.perf_counter()
        block = torch.full((length,), v.mask, device=self.model.device)
        r.token_ids = self._denoise(block, self.heads["text"], v.im_end, cfg).tolist()
        r.audio_wall_seconds = time.perf_counter() - t0
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


def generate_batch(model: TtTModel, conversations: list[list[dict]], **kwargs) -> list[GenerationResult]:
    """`generate` for many conversations at once: rows decode text in lockstep, one forward per token for
    the whole batch; each result equals `generate(model, conversation, **kwargs)`.

    Batching covers the text phase (ASR, text questions): prompts are left-padded (pads belong to no
    document, so nothing attends to them) and each row keeps its own positions. A row that opens an audio
    span, and every row when the settings need the full loop (forced text, guidance, a non-"ttt"/"ar" mode,
    the eager engine), is decoded on its own with `generate`. Results carry text, token ids and text events;
    `forward_passes` counts the batch's forwards.
    """
    cfg = GenerationConfig(**kwargs)
    cfg.check(model.config.audio_chunk, model.config)
    if (cfg.force_text or cfg.cfg_scale > 0 or cfg.engine != "fast" or not cfg.use_cache
            or model.config.mode not in ("ttt", "ar") or len(conversations) < 2):
        return [generate(model, conversation, **kwargs) for conversation in conversations]
    with torch.no_grad():
        return _TextBatch(model, conversations, cfg, kwargs).run()


class _TextBatch:
    """Greedy or sampled text decoding of several prompts in lockstep (see `generate_batch`)."""

    def __init__(self, model: TtTModel, conversations: list[list[dict]], cfg: GenerationConfig, kwargs: dict):
        self.model, self.cfg, self.kwargs, self.conversations = model, cfg, kwargs, conversations
        self.one = Generation(model, conversations[0], **kwargs)  # vocabulary masks and heads, shared

    def run(self) -> list[GenerationResult]:
        model, cfg, one, v = self.model, self.cfg, self.one, self.model.vocab
        dev = model.device
        start = time.perf_counter()
        prompts = [model.formatter.encode_prompt(c) for c in self.conversations]
        context = getattr(model.backbone.config, "max_position_embeddings", None) or math.inf
        for p in prompts:
            if len(p) >= context:
                raise ValueError(f"prompt has {len(p)} tokens but the model's context is {context}")
        rows, width = len(prompts), max(len(p) for p in prompts)
        capacity = width + cfg.max_new_tokens + 1
        ids = torch.zeros(rows, capacity, dtype=torch.long, device=dev)
        spans = torch.zeros(rows, capacity, dtype=torch.long, device=dev)
        doc = torch.full((rows, capacity), -1, dtype=torch.long, device=dev)
        pos = torch.zeros(rows, capacity, dtype=torch.long, device=dev)
        lengths = [len(p) for p in prompts]
        for r, p in enumerate(prompts):
            pad = width - len(p)
            ids[r, pad:width] = p.input_ids.to(dev)
            if model.config.mode == "ttt":
                spans[r, pad:width] = p.span.long().to(dev)
            doc[r, pad:width] = 0
            pos[r, pad:] = torch.arange(capacity - pad, device=dev)
        n_layers = model.backbone.config.get_text_config(decoder=True).num_hidden_layers
        cache = Cache(layers=[_PrefixLayer(max_cache_len=capacity) for _ in range(n_layers)])
        generators = [torch.Generator(device=dev).manual_seed(cfg.seed) for _ in range(rows)]
        results = [GenerationResult("", [], []) for _ in range(rows)]
        text_ids: list[list[int]] = [[] for _ in range(rows)]
        active = [True] * rows
        alone: list[int] = []
        forwards, end, new = 0, 0, width
        while True:
            for layer in cache.layers:
                layer.visible = end + new
            hidden = model.backbone_forward(
                ids[:, end : end + new], doc[:, : end + new], spans[:, : end + new], pos[:, end : end + new],
                cache=cache, hidden_only=True,
            )[:, -1]
            forwards += 1
            end += new
            new = 1
            logits = one.heads["text"](hidden).masked_fill(~one.text_ok, -math.inf)
            greedy = logits.argmax(-1).tolist() if cfg.temperature == 0 else None
            for r in range(rows):
                if not active[r]:
                    continue
                res = results[r]
                if len(res.token_ids) >= cfg.max_new_tokens or lengths[r] >= context - 1:
                    active[r] = False
                    continue
                token = greedy[r] if greedy is not None else _sample(logits[r], cfg, generators[r])
                res.token_ids.append(token)
                if token in one.stop_ids:
                    active[r] = False
                elif token in (v.begin_of_audio, v.begin_of_last_span):
                    active[r] = False
                    alone.append(r)
                else:
                    before = model.tokenizer.decode(text_ids[r])
                    text_ids[r].append(token)
                    delta = model.tokenizer.decode(text_ids[r])[len(before):]
                    res.events.append(TextDelta(delta, [token], time.perf_counter() - start))
                    ids[r, end] = token
                    doc[r, end] = 0
                    lengths[r] += 1
            if not any(active):
                break
        wall = time.perf_counter() - start
        for r, res in enumerate(results):
            res.text = model.tokenizer.decode(text_ids[r])
            res.forward_passes, res.wall_seconds = forwards, wall
        for r in alone:  # its turn goes on into audio: decode it whole, as batch 1 would
            results[r] = generate(model, self.conversations[r], **self.kwargs)
        return results
