"""Hybrid decoding: cache equals recomputation, variable-length stop, streaming order, bad arguments."""
import time

import pytest
import torch

from reference import reference_generate
from ttt.training.backbones import tiny_backbone
from ttt.generate import AudioSpan, GenerationConfig, TextDelta, generate, nar_steps, stream
from ttt.model import TtTModel

from helpers import LONG, SHORT


def prompt(example):
    return example["messages"][:-1]


def test_overfit_model_speaks_its_training_answers(trained):
    r = generate(trained, prompt(LONG), max_new_tokens=80)
    assert r.text == " chunk 0 the end"
    assert r.audio_spans == [list(range(26)), list(range(9))]
    r = generate(trained, prompt(SHORT), max_new_tokens=80)
    assert r.text == "hi" and r.audio_spans == [[40, 41, 42, 43, 44]]


@pytest.mark.parametrize("block_length,steps", [(26, 4), (26, 13), (4, 2), (7, 1)])
def test_cached_decoding_equals_full_recomputation(trained, block_length, steps):
    for example in (LONG, SHORT):
        ref = reference_generate(trained, prompt(example), 80, block_length, steps)
        got = generate(trained, prompt(example), max_new_tokens=80, block_length=block_length, steps=steps)
        assert got.token_ids == ref
        nocache = generate(trained, prompt(example), max_new_tokens=80, block_length=block_length, steps=steps, use_cache=False)
        assert nocache.token_ids == ref


def test_variable_length_stop_and_hard_cap(trained):
    v = trained.vocab
    r = generate(trained, prompt(LONG), max_new_tokens=80, block_length=26)
    last = r.token_ids[r.token_ids.index(v.begin_of_last_span) + 1 :]
    assert last[:10] == [v.code_id(c) for c in range(9)] + [v.end_of_last_span]
    assert last[10] == v.im_end  # nothing after the stop token of the block survives
    capped = generate(trained, prompt(LONG), max_new_tokens=80, max_last_span=3)
    assert capped.audio_spans[-1] == [0, 1, 2]


def test_stream_yields_events_in_order_as_produced(trained):
    events = list(stream(trained, prompt(LONG), max_new_tokens=80))
    kinds = [type(e).__name__ for e in events]
    first_audio = kinds.index("AudioSpan")
    assert kinds[:first_audio] == ["TextDelta"] * first_audio and kinds[first_audio + 1] == "TextDelta"
    assert [e.index for e in events if isinstance(e, AudioSpan)] == [0, 1]
    assert [e.last for e in events if isinstance(e, AudioSpan)] == [False, True]
    times = [e.time for e in events]
    assert times == sorted(times) and times[0] > 0
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == " chunk 0 the end"


def test_final_span_streams_block_by_block(trained):
    """Each diffused block of the final span is its own event; together they are the span."""
    gen_events = list(stream(trained, prompt(LONG), max_new_tokens=80, block_length=4, steps=2))
    audio = [e for e in gen_events if isinstance(e, AudioSpan)]
    assert [(e.index, e.last, e.closed, len(e.codes)) for e in audio] == [
        (0, False, True, 26), (1, True, False, 4), (1, True, False, 4), (1, True, True, 1)]
    assert sum((e.codes for e in audio[1:]), []) == list(range(9))
    whole = generate(trained, prompt(LONG), max_new_tokens=80, block_length=4, steps=2)
    assert whole.audio_spans == [list(range(26)), list(range(9))]
    assert whole.time_to_first_audio == whole.events[[type(e) for e in whole.events].index(AudioSpan)].time


def test_stream_is_lazy(trained):
    """The first span arrives before the rest of the answer is generated."""
    it = stream(trained, prompt(LONG), max_new_tokens=80)
    t0 = time.perf_counter()
    first = next(e for e in it if isinstance(e, AudioSpan))
    took_first = time.perf_counter() - t0
    rest = list(it)
    assert first.index == 0 and any(isinstance(e, AudioSpan) for e in rest)
    assert took_first < time.perf_counter() - t0


def test_forward_passes_per_audio_token(trained):
    r = generate(trained, prompt(LONG), max_new_tokens=80, block_length=26, steps=4)
    n_codes = len(r.audio_codes)
    assert r.audio_forward_passes / n_codes < 0.35  # 4 steps + 1 commit per 27-token span
    fast = generate(trained, prompt(LONG), max_new_tokens=80, block_length=26, steps=13, threshold=0.5)
    assert fast.token_ids == r.token_ids and fast.audio_forward_passes < 13 + 13


def test_ar_mode_decodes_one_forward_per_code(trained):
    trained.config.mode = "ar"
    try:
        r = generate(trained, prompt(LONG), max_new_tokens=60)
    finally:
        trained.config.mode = "ttt"
    n = len(r.audio_codes)
    closers = [t for t in r.token_ids if t in trained.vocab.span_closers]
    assert n > 0 and r.audio_forward_passes == n + len(closers)
    fixed = [s for s, c in zip(r.audio_spans, closers) if c == trained.vocab.end_of_span]
    assert all(len(s) == 26 for s in fixed)


def test_nar_mode_diffuses_one_block(trained):
    trained.config.mode = "nar"
    try:
        r = generate(trained, prompt(SHORT), max_new_tokens=52, steps=4, block_length=26)
    finally:
        trained.config.mode = "ttt"
    assert r.forward_passes == 1 + r.audio_forward_passes and 1 <= r.audio_forward_passes <= 8
    assert len(r.token_ids) <= 52


def test_stop_threshold_ends_the_final_span_where_the_stop_is_likely_enough(trained):
    v = trained.vocab
    plain = generate(trained, prompt(LONG), max_new_tokens=80)
    assert generate(trained, prompt(LONG), max_new_tokens=80, stop_threshold=0.999).token_ids == plain.token_ids
    eager = generate(trained, prompt(LONG), max_new_tokens=80, stop_threshold=1e-12)
    # The final span stops at its first position. What the toy model writes after an empty final span was
    # never trained (another span on one CPU's kernels, <|im_end|> on another), so only the span is checked.
    assert eager.audio_spans[:2] == [list(range(26)), []]
    last = eager.token_ids[eager.token_ids.index(v.begin_of_last_span) + 1:]
    assert last[0] == v.end_of_last_span


def test_nar_length_sets_the_response_block(trained, monkeypatch):
    """`nar_length` decodes a block of that many tokens whatever `max_new_tokens` is (the reproduction study
    decodes its NAR baseline at the lengths it was trained on, not at the turn cap); both engines agree."""
    import importlib

    blocks = []
    for module in map(importlib.import_module, ("ttt.generate", "ttt.generate_eager")):
        real = module._denoise

        def spy(seq, block, *args, real=real, **kwargs):
            blocks.append(block.numel())
            return real(seq, block, *args, **kwargs)

        monkeypatch.setattr(module, "_denoise", spy)
    trained.config.mode = "nar"
    try:
        kwargs = dict(max_new_tokens=256, steps=4, block_length=26)
        short = generate(trained, prompt(SHORT), nar_length=30, **kwargs)
        old = generate(trained, prompt(SHORT), nar_length=30, engine="eager", **kwargs)
        generate(trained, prompt(SHORT), **kwargs)
    finally:
        trained.config.mode = "ttt"
    assert blocks == [30, 30, 256]
    assert len(short.token_ids) <= 30 and short.token_ids == old.token_ids
    assert short.audio_forward_passes <= nar_steps(30, GenerationConfig(steps=4, block_length=26)) == 5


def test_nar_steps_keep_the_blockwise_rate():
    assert nar_steps(52, GenerationConfig(steps=4, block_length=26)) == 8
    assert nar_steps(27, GenerationConfig(steps=13, block_length=26)) == 14
    assert nar_steps(1, GenerationConfig(steps=1, block_length=26)) == 1


def test_classifier_free_guidance_runs_two_rows(trained):
    rows = []
    # every decoding forward (the lean one or the Hugging Face modules) embeds its rows first
    hook = trained.backbone.get_input_embeddings().register_forward_hook(lambda m, a, out: rows.append(a[0].shape[0]))
    try:
        guided = generate(trained, prompt(LONG), max_new_tokens=80, cfg_scale=1.5)
        nocache = generate(trained, prompt(LONG), max_new_tokens=80, cfg_scale=1.5, use_cache=False)
    finally:
        hook.remove()
    assert set(rows) == {2}
    assert guided.token_ids == nocache.token_ids
    assert len(guided.audio_spans[0]) == 26 and guided.text.startswith(" chunk 0")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"block_length": 0}, "block_length must be positive"),
        ({"stop_threshold": 0.0}, "stop_threshold must be in"),
        ({"steps": 0}, "steps must be positive"),
        ({"steps": 30, "block_length": 26}, "steps (30) > tokens per block"),
        ({"steps": 5, "block_length": 4}, "steps (5) > tokens per block (4)"),
        ({"max_new_tokens": 0}, "must be positive"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_bad_arguments(trained, kwargs, message):
    with pytest.raises(ValueError) as err:
        generate(trained, prompt(LONG), **kwargs)
    assert message in str(err.value)


def test_prompt_longer_than_context(base_tokenizer):
    import copy

    tok = copy.deepcopy(base_tokenizer)
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + 80, max_positions=32), tok, audio_codebook_size=64).eval()
    with pytest.raises(ValueError, match="prompt has .* tokens but the model's context is 32"):
        generate(model, prompt(LONG))


def test_sampling_is_seeded(trained):
    a = generate(trained, prompt(LONG), max_new_tokens=30, temperature=1.5, top_k=20, top_p=0.9, diffusion_temperature=1.0, seed=1)
    b = generate(trained, prompt(LONG), max_new_tokens=30, temperature=1.5, top_k=20, top_p=0.9, diffusion_temperature=1.0, seed=1)
    assert a.token_ids == b.token_ids


def test_forced_text_speaks_exactly_that_text(trained):
    text = "hello world, how are you today? the capital of france is paris"
    r = generate(trained, prompt(SHORT), max_new_tokens=400, force_text=text, max_last_span=30)
    assert r.text == text and r.token_ids[-1] == trained.vocab.im_end
    n_tokens = len(trained.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert len(r.audio_spans) == -(-n_tokens // trained.config.text_chunk)
    assert all(len(s) == 26 for s in r.audio_spans[:-1]) and 1 <= len(r.audio_spans[-1]) <= 30
