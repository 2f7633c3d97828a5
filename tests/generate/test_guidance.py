"""Classifier-free guidance: what the unguided row sees under each `cfg_context` (issue #22 item 2).

"prompt" (ours): the prompt before the assistant header is masked; the header and the turn's own text and
audio stay visible. "all" (the reference inference script, which masks every non-mask token of the sequence
before the block it denoises): the unguided row sees masks only, plus the block being denoised.
"""
import pytest
import torch

from ttt.config import load_decoding, save_decoding
from ttt.generate import Generation, generate
from ttt.generate_eager import EagerGeneration

from helpers import LONG, SHORT


def prompt(example):
    return example["messages"][:-1]


def _run(trained, engine, example, context):
    cls = Generation if engine == "fast" else EagerGeneration
    gen = cls(trained, prompt(example), max_new_tokens=80, cfg_scale=1.5, cfg_context=context)
    events = list(gen)
    return gen, events


def _committed(gen) -> torch.Tensor:
    seq = gen.seq
    return seq.ids[:, : seq.length] if hasattr(seq, "length") else seq.ids


@pytest.mark.parametrize("engine", ["fast", "eager"])
def test_unguided_row_commits_only_masks_with_all_context(trained, engine):
    gen, _ = _run(trained, engine, LONG, "all")
    ids = _committed(gen).cpu()
    n_prompt = len(trained.formatter.encode_prompt(prompt(LONG)))
    assert ids.shape[1] > n_prompt + 26  # the turn's text and a whole audio span were committed
    assert (ids[1] == trained.vocab.mask).all()
    assert (ids[0] != trained.vocab.mask).all()


@pytest.mark.parametrize("engine", ["fast", "eager"])
def test_unguided_row_keeps_the_header_and_the_turn_with_prompt_context(trained, engine):
    gen, _ = _run(trained, engine, LONG, "prompt")
    ids = _committed(gen).cpu()
    n_prompt = len(trained.formatter.encode_prompt(prompt(LONG)))
    header = len(trained.formatter.assistant_header())
    assert (ids[1, : n_prompt - header] == trained.vocab.mask).all()
    assert torch.equal(ids[1, n_prompt - header :], ids[0, n_prompt - header :])


def test_denoised_block_is_the_same_in_both_rows(trained):
    """Every forward of the unguided row shows masks where the conditional row shows committed tokens (a
    commit, or commits deferred into the forward's front) and then, if it denoises, the conditional row's
    own block: nothing else of the context leaks in."""
    seen = []
    hook = trained.backbone.get_input_embeddings().register_forward_hook(
        lambda m, a, out: seen.append(a[0].detach().cpu().clone())
    )
    try:
        gen, _ = _run(trained, "fast", LONG, "all")
    finally:
        hook.remove()
    v = trained.vocab
    blocks = 0
    for ids in seen:
        differ = (ids[0] != ids[1]).nonzero()
        front = int(differ.max()) + 1 if len(differ) else 0
        assert (ids[1, :front] == v.mask).all() and (ids[0, :front] != v.mask).all()
        block = ids[0, front:]
        if len(block):
            blocks += 1
            assert ((block == v.mask) | v.is_code(block) | (block == v.end_of_span) | (block == v.end_of_last_span)).all()
    assert blocks, "no denoising step was seen"


@pytest.mark.parametrize("example", [LONG, SHORT], ids=["long", "short"])
def test_all_context_cache_equals_recomputation(trained, example):
    """With `use_cache=False` every forward recomputes the masked row from its committed ids (a reference)."""
    cached = generate(trained, prompt(example), max_new_tokens=80, cfg_scale=1.5, cfg_context="all")
    recomputed = generate(trained, prompt(example), max_new_tokens=80, cfg_scale=1.5, cfg_context="all",
                          use_cache=False)
    assert cached.token_ids == recomputed.token_ids


def test_cfg_context_round_trips_through_decoding_json(tmp_path):
    save_decoding(tmp_path, {"cfg_scale": 0.5, "cfg_context": "all"})
    assert load_decoding(tmp_path) == {"cfg_scale": 0.5, "cfg_context": "all"}
