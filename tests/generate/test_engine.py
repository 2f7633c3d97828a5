"""The fast engine (device-side decoding, static cache, restricted heads) against the previous engine.

Outputs must be token-for-token those of `engine="eager"` (the engine before this one), for every decoding
mode and knob, including the paths a GPU takes (fixed-shape cache window, no per-step host check), which
run here eagerly."""
import pytest
import torch

from ttt.generate import Generation, generate
from ttt.generate_eager import EagerGeneration

from helpers import LONG, SHORT


def prompt(example):
    return example["messages"][:-1]


SETTINGS = [
    {"max_new_tokens": 80},
    {"max_new_tokens": 80, "block_length": 4, "steps": 2},
    {"max_new_tokens": 80, "block_length": 7, "steps": 1},
    {"max_new_tokens": 80, "block_length": 26, "steps": 13, "threshold": 0.5},
    {"max_new_tokens": 80, "stop_threshold": 1e-12},
    {"max_new_tokens": 80, "stop_threshold": 0.3, "block_length": 5, "steps": 5},
    {"max_new_tokens": 80, "max_last_span": 3},
    {"max_new_tokens": 80, "cfg_scale": 1.5},
    {"max_new_tokens": 80, "cfg_scale": 1.5, "cfg_context": "all"},
    {"max_new_tokens": 80, "use_cache": False},
    {"max_new_tokens": 400, "force_text": "hello world, how are you today?", "max_last_span": 30},
]


def same(a, b):
    assert a.token_ids == b.token_ids
    assert a.text == b.text and a.audio_spans == b.audio_spans


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("sync_every_step", [True, False])
def test_fast_engine_equals_eager_engine(trained, settings, sync_every_step):
    for example in (LONG, SHORT):
        old = generate(trained, prompt(example), engine="eager", **settings)
        gen = Generation(trained, prompt(example), sync_every_step=sync_every_step, **settings)
        gen.result.events = list(gen)
        new = gen.result
        same(new, old)
        if sync_every_step:  # same early exits, so the same forward passes, less the deferred commits
            assert new.forward_passes + gen.seq.deferred == old.forward_passes
        assert gen.seq.deferred >= len(new.audio_spans)  # at least every span's opener ran with its first step


@pytest.mark.parametrize("mode,settings", [("ar", {"max_new_tokens": 60}), ("nar", {"max_new_tokens": 52})])
def test_fast_engine_equals_eager_engine_in_ar_and_nar_modes(trained, mode, settings):
    trained.config.mode = mode
    try:
        for example in (LONG, SHORT):
            same(generate(trained, prompt(example), **settings), generate(trained, prompt(example), engine="eager", **settings))
    finally:
        trained.config.mode = "ttt"


def test_sampling_uses_the_same_engine_knobs_deterministically(trained):
    kwargs = dict(max_new_tokens=40, temperature=1.5, top_k=20, top_p=0.9, diffusion_temperature=1.0, seed=3)
    a = generate(trained, prompt(LONG), **kwargs)
    b = generate(trained, prompt(LONG), sync_every_step=False, **kwargs)
    assert a.token_ids == b.token_ids


@pytest.mark.parametrize("settings", SETTINGS[:3] + SETTINGS[4:8], ids=str)
def test_fixed_shape_window_equals_eager_engine(trained, settings):
    """The GPU path: every forward attends over the whole pre-allocated cache (unwritten slots masked out),
    through the CUDA-graph wrapper (which on a CPU falls back to eager, saying so), and the host checks a
    block once."""
    for example in (LONG, SHORT):
        with pytest.warns(UserWarning, match="CUDA graph capture of the decoding forward failed .*CUDA device"):
            gen = Generation(trained, prompt(example), compile="graphs", sync_every_step=False, **settings)
            events = list(gen)
        assert gen.seq.full_window and not gen.seq.cache.ttt_busy
        gen.result.events = events
        same(gen.result, generate(trained, prompt(example), engine="eager", **settings))
        trained.__dict__.pop("_ttt_decoders")  # the next turn tries (and warns) again


def test_pooled_cache_serves_interleaved_streams(trained):
    """Two fixed-shape turns decoded in lockstep get separate caches and both equal the eager engine."""
    with pytest.warns(UserWarning):
        a = Generation(trained, prompt(LONG), compile="graphs", max_new_tokens=80)
        b = Generation(trained, prompt(LONG), compile="graphs", max_new_tokens=80)
        streams = [iter(a), iter(b)]
        next(streams[0]), next(streams[1])
        assert a.seq.cache is not b.seq.cache and a.seq.cache.ttt_busy and b.seq.cache.ttt_busy
        while streams:
            for s in list(streams):
                if next(s, None) is None:
                    streams.remove(s)
    assert not a.seq.cache.ttt_busy and not b.seq.cache.ttt_busy
    assert torch.is_grad_enabled()  # interleaved streams leave the grad mode as they found it
    assert a.result.token_ids == b.result.token_ids
    assert a.result.token_ids == generate(trained, prompt(LONG), engine="eager", max_new_tokens=80).token_ids
    trained.__dict__.pop("_ttt_decoders")


def test_consumer_code_between_events_keeps_its_grad_mode(trained):
    seen = [torch.is_grad_enabled() for _ in Generation(trained, prompt(SHORT), max_new_tokens=80)]
    assert seen and all(seen)


def test_compile_failure_falls_back_to_eager(trained, monkeypatch):
    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler here")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile of the decoding forward failed .*no compiler here"):
        got = generate(trained, prompt(SHORT), max_new_tokens=80, compile="inductor")
    trained.__dict__.pop("_ttt_decoders")
    same(got, generate(trained, prompt(SHORT), max_new_tokens=80, engine="eager"))


def test_eager_engine_is_selected_by_name(trained):
    assert isinstance(Generation(trained, prompt(SHORT), engine="eager"), EagerGeneration)
    assert type(Generation(trained, prompt(SHORT))) is Generation
    with pytest.raises(ValueError, match="engine must be 'fast' or 'eager'"):
        generate(trained, prompt(SHORT), engine="turbo")
    with pytest.raises(ValueError, match="compile must be"):
        generate(trained, prompt(SHORT), compile=True)


def test_text_steps_project_only_what_they_need(trained):
    """Audio blocks are scored over the codes (and the stop token) only; a commit keeps one position."""
    gen = Generation(trained, prompt(LONG), max_new_tokens=80)
    v = trained.vocab
    assert gen.heads["codes"].size == v.codebook_size
    assert gen.heads["codes_or_stop"].size == v.codebook_size + 1
    assert gen.heads["codes_or_stop"].local(v.end_of_last_span) == v.codebook_size
    hidden = torch.randn(3, trained.backbone.config.hidden_size)
    full = trained.backbone.get_output_embeddings()(hidden).float()
    torch.testing.assert_close(gen.heads["codes"](hidden), full[:, gen.heads["codes"].ids])


@pytest.mark.parametrize("mode,settings", [
    ("ttt", {"max_new_tokens": 80, "block_length": 4, "steps": 2}),
    ("ar", {"max_new_tokens": 60}),
    pytest.param("ttt", {"max_new_tokens": 400, "max_last_span": 30, "force_text": "hello world, how are you today?"},
                 marks=pytest.mark.slow),
])
def test_inductor_compiled_forwards_decode_the_eager_tokens(trained, inductor_cache, mode, settings):
    """`compile="inductor"` for real (no fallback): the same tokens as the eager engine. The first case
    compiles the one-token step (~17 s on one core); the others reuse it."""
    trained.config.mode = mode
    try:
        for example in (LONG, SHORT):
            got = generate(trained, prompt(example), compile="inductor", **settings)
            compiled = trained.__dict__["_ttt_decoders"][("inductor", True)]
            assert not compiled.broken, "torch.compile failed and decoding fell back to eager"
            same(got, generate(trained, prompt(example), engine="eager", **settings))
    finally:
        trained.config.mode = "ttt"
        trained.__dict__.pop("_ttt_decoders", None)
