"""The modality-aware mask, checked element by element; dense and Flex renderings identical."""
import pytest
import torch

from helpers import chat_example
from ttt.format import Modality
from ttt.masks import block_mask, dense_mask, mask_mod
from ttt.training.collate import collate_for

# One row, two packed examples:  example 0 = t t [a a a] t t [a a] t ; example 1 = t [a a] t ; pad pad
DOC = torch.tensor([[0] * 11 + [1] * 4 + [-1, -1]])
SPAN = torch.tensor([[0, 0, 1, 1, 1, 0, 0, 2, 2, 0, 0, 0, 3, 3, 0, 0, 0]])


@pytest.fixture(scope="module")
def m():
    return dense_mask(DOC, SPAN)[0, 0]


def test_text_is_causal(m):
    assert m[1, 0] and m[1, 1] and not m[0, 1]
    assert m[6, 5] and not m[5, 6]


def test_span_is_bidirectional_within_itself(m):
    for q in (2, 3, 4):
        for k in (2, 3, 4):
            assert m[q, k]
    assert m[7, 8] and m[8, 7]


def test_span_sees_earlier_context_not_later(m):
    assert m[2, 0] and m[2, 1] and m[4, 1]
    assert not m[4, 5] and not m[2, 7] and not m[7, 10]


def test_later_tokens_see_a_span_earlier_tokens_do_not(m):
    assert m[5, 2] and m[5, 4] and m[7, 4] and m[10, 8]
    assert not m[1, 2] and not m[0, 4]
    assert not m[7, 9] and m[9, 8]  # text after a span is causal again


def test_no_attention_across_packed_examples(m):
    assert not m[11, 10] and not m[11, 0] and not m[12, 8]
    assert m[12, 11] and m[12, 13] and m[13, 12] and not m[11, 12]
    assert not m[10, 11]


def test_padding_attends_only_to_itself(m):
    assert m[15].nonzero().flatten().tolist() == [15]
    assert not m[:15, 15].any()


def test_matches_a_loop_reference(m):
    L = DOC.shape[1]
    ref = torch.zeros(L, L, dtype=torch.bool)
    for q in range(L):
        for k in range(L):
            if q == k:
                ref[q, k] = True
            elif DOC[0, q] == DOC[0, k] and DOC[0, k] >= 0:
                ref[q, k] = k <= q or (SPAN[0, q] == SPAN[0, k] and SPAN[0, q] > 0)
    assert torch.equal(m, ref)


def test_cached_queries_see_the_same_rows(m):
    tail = dense_mask(DOC, SPAN, q_len=6)[0, 0]
    assert torch.equal(tail, m[-6:])


def test_flex_block_mask_equals_dense(make_model):
    from torch.nn.attention.flex_attention import create_mask

    model = make_model()
    batch = collate_for(model, [chat_example(), {"text": "hello world"}, chat_example(1, 30)], train=True, pack=False)
    doc, span = batch["doc_ids"], batch["span_ids"]
    dense = dense_mask(doc, span)
    B, L = doc.shape
    assert torch.equal(create_mask(mask_mod(doc, span), B, None, L, L, device="cpu"), dense)
    bm = block_mask(doc, span)
    assert tuple(bm.shape) == (B, 1, L, L)
    q = torch.randn(B, 2, L, 16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    from torch.nn.attention.flex_attention import flex_attention

    flex = flex_attention(q, k, v, block_mask=bm)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    torch.testing.assert_close(flex, sdpa, atol=1e-5, rtol=1e-5)
    sub = block_mask(doc, span, q_len=20)
    flex_tail = flex_attention(q[:, :, -20:], k, v, block_mask=sub)
    torch.testing.assert_close(flex_tail, sdpa[:, :, -20:], atol=1e-5, rtol=1e-5)


def test_packed_batch_mask(make_model):
    model = make_model(max_length=400)
    batch = collate_for(model, [chat_example(), {"text": "hello world"}, chat_example(1, 5)], train=False, pack=True)
    assert batch["input_ids"].shape[0] == 1
    m = dense_mask(batch["doc_ids"], batch["span_ids"])[0, 0]
    doc = batch["doc_ids"][0]
    valid = doc >= 0
    cross = (doc[:, None] != doc[None, :]) & valid[:, None] & valid[None, :]
    assert not m[cross].any()
    assert bool((batch["position_ids"][0][doc == 1] == torch.arange(int((doc == 1).sum()))).all())
    audio = (batch["modality"][0] == Modality.AUDIO_SPAN).nonzero().flatten()
    assert m[audio[0], audio[5]]  # bidirectional inside a packed example's span
