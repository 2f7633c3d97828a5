"""The final span's attention, both fixes of issue #22: block-causal training equals what cached decoding
shows the model, and `final_span="official"` decoding equals a recompute-everything reference with the
whole final span one bidirectional run."""
from dataclasses import replace

import pytest
import torch

from reference import reference_generate
from ttt.config import GenerationConfig, TtTConfig
from ttt.format import EncodedExample, Modality
from ttt.generate import Generation, generate
from ttt.masks import dense_mask
from ttt.training.collate import collate, final_span_blocks

from helpers import LONG, SHORT


def prompt(example):
    return example["messages"][:-1]


class block_causal:
    """The `trained` fixture's model with block-causal final spans of `block_length` codes, for one test."""

    def __init__(self, model, block_length: int) -> None:
        self.model, self.block_length = model, block_length

    def __enter__(self):
        self.saved = self.model.config
        self.model.config = replace(self.saved, final_span_attention="block_causal", block_length=self.block_length)
        return self.model

    def __exit__(self, *exc):
        self.model.config = self.saved


def decoder_view(model, example, **settings):
    """Committed ids and attention runs of a cached decode (the prompt, text, spans, blocks as committed)."""
    gen = Generation(model, prompt(example), max_new_tokens=80, **settings)
    gen.result.events = list(gen)
    n = gen.seq.length
    return gen.result, gen.seq.ids[0, :n], gen.seq.spans[0, :n]


# (block length, steps): final spans of 9 codes + closer cut 4+4+2, 7+3, and 9+1 (the closer alone opens a block)
@pytest.mark.parametrize("block_length,steps", [(4, 2), (7, 1), (9, 1), (26, 4)])
def test_block_causal_training_mask_equals_what_cached_decoding_attends(trained, block_length, steps):
    with block_causal(trained, block_length) as model:
        for example in (LONG, SHORT):
            result, ids, spans = decoder_view(model, example, block_length=block_length, steps=steps)
            v = model.vocab
            final = result.token_ids[result.token_ids.index(v.begin_of_last_span) + 1 :]
            assert final[-2] == v.end_of_last_span and final[-1] == v.im_end  # a closed span, then the turn ended
            content = model.formatter.decode(result.token_ids[:-1])
            said = {"messages": prompt(example) + [{"role": "assistant", "content": content}]}
            batch = collate([said], model.formatter, model.config, train=False)
            n = ids.numel()
            assert torch.equal(batch["input_ids"][0, :n], ids.cpu())  # the same token sequence
            train_mask = dense_mask(batch["doc_ids"][:, :n], batch["span_ids"][:, :n])
            decode_mask = dense_mask(torch.zeros(1, n, dtype=torch.long), spans[None].cpu())
            assert torch.equal(train_mask, decode_mask)
            # and it is not today's bidirectional layout whenever the span has more than one block
            bidir = collate([said], model.formatter, replace(model.config, final_span_attention="bidirectional"),
                            train=False)
            differs = not torch.equal(dense_mask(bidir["doc_ids"][:, :n], bidir["span_ids"][:, :n]), decode_mask)
            assert differs == (len(final) - 1 > block_length)


def test_final_span_blocks_count_from_the_first_code_and_keep_padding_in_its_block():
    # text, input-audio run (3), text, fixed span (4 incl. closer), opener, final span 5 codes + closer + 3 pads, text
    T, I, A, L, P = Modality.TEXT, Modality.INPUT_AUDIO, Modality.AUDIO_SPAN, Modality.LAST_SPAN, Modality.SPAN_PAD
    modality = [T, I, I, I, T, A, A, A, A, T] + [L] * 6 + [P] * 3 + [T]
    span = [0, 1, 1, 1, 0, 2, 2, 2, 2, 0] + [3] * 9 + [0]
    got = final_span_blocks(torch.tensor(span, dtype=torch.int32), torch.tensor([int(m) for m in modality]), 4)
    assert got.tolist() == [0, 1, 1, 1, 0, 2, 2, 2, 2, 0] + [3, 3, 3, 3, 4, 4, 4, 4, 5] + [0]
    ex = EncodedExample(torch.arange(20), torch.tensor([int(m) for m in modality], dtype=torch.int8),
                        torch.tensor(span, dtype=torch.int32), torch.ones(20, dtype=torch.bool))
    assert final_span_blocks(ex.span, ex.modality, 26).tolist() == span  # one block: today's layout


def test_block_causal_setting_is_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match="final_span_attention must be one of"):
        TtTConfig(final_span_attention="causal")
    with pytest.raises(ValueError, match="block_length must be positive"):
        TtTConfig(final_span_attention="block_causal", block_length=0)
    with pytest.raises(ValueError, match="needs mode 'ttt'"):
        TtTConfig(mode="nar", final_span_attention="block_causal")
    TtTConfig(final_span_attention="block_causal", block_length=13).save(tmp_path)
    loaded = TtTConfig.load(tmp_path)
    assert (loaded.final_span_attention, loaded.block_length) == ("block_causal", 13)


def test_a_block_causal_model_is_decoded_in_its_trained_blocks(trained):
    with block_causal(trained, 7) as model:
        with pytest.raises(ValueError, match="trained with block-causal final spans of 7 codes"):
            generate(model, prompt(SHORT), max_new_tokens=10, block_length=4, steps=2)


def test_final_span_setting_is_checked():
    with pytest.raises(ValueError, match="final_span must be one of"):
        GenerationConfig(final_span="bidirectional")
    with pytest.raises(ValueError, match="fast engine only"):
        GenerationConfig(final_span="official", engine="eager")


@pytest.mark.parametrize("block_length,steps", [(26, 4), (4, 2), (7, 1), (3, 1)])
def test_official_final_span_equals_full_recomputation(trained, block_length, steps):
    for example in (LONG, SHORT):
        ref = reference_generate(trained, prompt(example), 80, block_length, steps, final_span="official")
        got = generate(trained, prompt(example), max_new_tokens=80, block_length=block_length, steps=steps,
                       final_span="official")
        assert got.token_ids == ref
        nocache = generate(trained, prompt(example), max_new_tokens=80, block_length=block_length, steps=steps,
                           final_span="official", use_cache=False)
        assert nocache.token_ids == ref


def test_official_final_span_reruns_earlier_blocks_and_commits_the_span_once(trained):
    """Blocks 2 and 3 of a 9-code span in blocks of 4 see 4 and 8 earlier codes; the span (10 tokens) enters
    the cache in one commit; the fixed-shape (GPU) window gives the same tokens."""
    gen = Generation(trained, prompt(LONG), max_new_tokens=80, block_length=4, steps=2, final_span="official")
    gen.result.events = list(gen)
    assert gen.result.audio_spans[-1] == list(range(9)) and gen.result.token_ids[-1] == trained.vocab.im_end
    peeks = {n for kind, n, _ in gen.seq.log if kind == "peek"}
    # the fixed span (26 + closer), then the final span's blocks with their past; each span's first peek
    # also runs the span's opener, whose commit was deferred into it (one forward fewer)
    assert peeks == {28, 27, 5, 4, 8, 12}
    assert ("commit", 10) in [(kind, n) for kind, n, _ in gen.seq.log]
    with pytest.warns(UserWarning, match="CUDA graph capture"):
        window = Generation(trained, prompt(LONG), max_new_tokens=80, block_length=4, steps=2, final_span="official",
                            compile="graphs", sync_every_step=False)
        events = list(window)
    assert window.seq.full_window and window.result.token_ids == gen.result.token_ids and events
    assert {n for kind, n, _ in window.seq.log if kind == "peek"} == {27, 4, 8, 12}  # fixed shapes defer nothing
    trained.__dict__.pop("_ttt_decoders")


def test_official_final_span_with_guidance_and_a_cap(trained):
    """Guidance rows and the hard cap (the closer appended to the span) go through the same path."""
    capped = generate(trained, prompt(LONG), max_new_tokens=80, max_last_span=3, final_span="official",
                      block_length=2, steps=1)
    assert capped.audio_spans[-1] == [0, 1, 2]
    assert capped.token_ids[-2:] == [trained.vocab.end_of_last_span, trained.vocab.im_end]
    guided = generate(trained, prompt(LONG), max_new_tokens=80, cfg_scale=1.5, final_span="official")
    assert guided.audio_spans[-1] == generate(trained, prompt(LONG), max_new_tokens=80, cfg_scale=1.5).audio_spans[-1]


def test_official_final_span_peeks_equal_a_full_recompute_with_the_span_as_one_run(trained):
    """Each denoising forward of a final-span block, against the cached prefix, gives the hidden states of a
    no-cache forward over the whole sequence in which the span so far (earlier blocks + this block) is one
    run; the block-causal layout (today's cached decoding) gives measurably different ones, so this check
    tells the two apart even where greedy tokens agree (the toy model is overfit)."""
    gen = Generation(trained, prompt(LONG), max_new_tokens=80, block_length=4, steps=2, final_span="official")
    seq, seen = None, []
    gen_peek = None

    def recording_peek(ids, spans, eager=False):
        hidden = gen_peek(ids, spans, eager)
        end = seq.length + ids.shape[1]
        seen.append((seq.ids[0, :end].clone(), seq.spans[0, :end].clone(), ids.shape[1], hidden[0].clone()))
        return hidden

    prefill = gen._prefill
    def prefill_and_record(messages):  # the sequence exists once the prompt is in
        nonlocal seq, gen_peek
        hidden = prefill(messages)
        seq, gen_peek = gen.seq, gen.seq.peek
        seq.peek = recording_peek
        return hidden

    gen._prefill = prefill_and_record
    gen.result.events = list(gen)
    opener = (seen[-1][0] == trained.vocab.begin_of_last_span).nonzero().item()
    checked = 0
    for ids, spans, new, hidden in seen:
        if ids.numel() - new != opener + 1 or new <= 4:  # not a final-span block with earlier blocks before it
            continue
        span = spans[opener + 1 :]
        assert (span == span[0]).all() and span[0] > 0  # the span so far is one run
        n = ids.numel()
        full = trained.backbone_forward(ids[None], torch.zeros(1, n, dtype=torch.long), spans[None],
                                        torch.arange(n)[None], hidden_only=True)[0, -new:]
        torch.testing.assert_close(hidden, full, atol=1e-4, rtol=1e-4)
        blocks = spans.clone()
        blocks[opener + 1 :] = span[0] + torch.arange(span.numel()) // 4  # the block-causal layout instead
        cached = trained.backbone_forward(ids[None], torch.zeros(1, n, dtype=torch.long), blocks[None],
                                          torch.arange(n)[None], hidden_only=True)[0, -new:]
        assert (cached - full).abs().max() > 1e-2
        checked += 1
    assert checked >= 2  # blocks 2 and 3 of the 9-code span, each over its denoising steps


def test_official_decoding_is_saved_with_a_model(tmp_path):
    from ttt.config import load_decoding, save_decoding

    save_decoding(tmp_path, {"final_span": "official", "steps": 4})
    assert load_decoding(tmp_path) == {"final_span": "official", "steps": 4}
    (tmp_path / "decoding.json").write_text('{"final_span": "full"}')
    with pytest.raises(ValueError, match="decoding.json: final_span must be one of"):
        load_decoding(tmp_path)


@pytest.mark.parametrize("block_length", [4, 7])
def test_official_final_span_with_given_text_equals_no_cache(trained, block_length):
    """Speaking a given text defers every commit nobody reads (the span's own commit included): the tokens
    still equal a recompute of everything."""
    settings = dict(max_new_tokens=80, block_length=block_length, steps=2, final_span="official",
                    force_text="six plus three is nine")
    cached = generate(trained, prompt(SHORT), **settings)
    assert cached.audio_spans and cached.token_ids == generate(trained, prompt(SHORT), use_cache=False, **settings).token_ids
