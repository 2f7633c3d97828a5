"""The reference implementation's training settings as options (issue #22 item 2): SST per assistant message
(`ttt.sst_scope: message`) and a text target at masked closing tokens (`ttt.masked_closer_text_target`)."""
import pytest
import torch
from torch import nn

from helpers import audio, chat_example
from ttt.config import TtTConfig
from ttt.format import Modality
from ttt.training.collate import collate_for
from ttt.training.noising import truncate_last_span

FIRST, SECOND = 40, 30  # codes in the final span of the first and of the second assistant message


def two_turns() -> dict:
    """System, then user speech -> spoken answer, twice; each answer ends with a final span."""
    return {"messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": f"<|begin_of_audio|>{audio(range(7))}<|end_of_audio|>"},
        {"role": "assistant", "content": f"one<|begin_of_quad|>{audio(range(FIRST))}<|end_of_audio_span_last|>"},
        {"role": "user", "content": f"<|begin_of_audio|>{audio(range(5, 12))}<|end_of_audio|>"},
        {"role": "assistant", "content": f"two<|begin_of_quad|>{audio(range(SECOND))}<|end_of_audio_span_last|>"},
    ]}


def _final_spans(ids, model):
    """(start, end) of each final span's codes (after `<|begin_of_quad|>`, up to the closer or the cut)."""
    v = model.vocab
    out = []
    for start in (ids == v.begin_of_last_span).nonzero().flatten().tolist():
        end = start + 1
        while end < len(ids) and bool(v.is_code(ids[end:end + 1])):
            end += 1
        out.append((start + 1, end))
    return out


def _collate(model, example, seed):
    return collate_for(model, [example], generator=torch.Generator().manual_seed(seed))


def test_message_scope_cuts_each_answer_and_keeps_the_later_turns(make_model):
    model = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=1.0, sst_scope="message")
    v = model.vocab
    full = model.encode(two_turns()).input_ids
    second_user = int((full == v.im_start).nonzero().flatten()[3])
    for seed in range(10):
        b = _collate(model, two_turns(), seed)
        ids, trainable = b["input_ids"][0], b["trainable"][0]
        (s1, e1), (s2, e2) = _final_spans(ids, model)
        assert 0.3 * FIRST - 1 <= e1 - s1 <= 0.9 * FIRST and 0.3 * SECOND - 1 <= e2 - s2 <= 0.9 * SECOND
        # first answer: its closer, <|im_end|> and newline are gone; the second user turn follows the kept codes
        assert torch.equal(ids[e1:e1 + (s2 - e1)], full[second_user:second_user + (s2 - e1)])
        assert int(ids[e1]) == v.im_start and v.end_of_last_span not in ids[: s2].tolist()
        # the second answer is cut too, and the example ends with its kept codes
        assert e2 == len(ids) and v.end_of_last_span not in ids.tolist()
        assert ids.tolist().count(v.im_end) == full.tolist().count(v.im_end) - 2  # only the answers' ends went
        # which targets apply: the kept codes and the second answer are trained, the second user turn is not
        answer = int((ids == v.im_start).nonzero().flatten()[-1]) + len(model.formatter.assistant_header())
        assert trainable[s1:e1].all() and not trainable[e1:answer].any() and trainable[answer:].all()
        text, _ = model.targets(b["labels"], b["modality"], b["doc_ids"], b["trainable"], torch.zeros_like(b["masked"]))
        assert not text[0, e1 - 1], "the last kept code has no text target (the user turn after it is not trained)"
        assert text[0, answer - 1:s2 - 1].all()  # "two" and <|begin_of_quad|> are still predicted from their prefix


def test_example_scope_cuts_only_the_last_answer(make_model):
    model = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=1.0)
    full = model.encode(two_turns()).input_ids
    ids = _collate(model, two_turns(), 0)["input_ids"][0]
    (s1, e1), (s2, e2) = _final_spans(ids, model)
    assert e1 - s1 == FIRST and torch.equal(ids[:s2], full[:s2])  # the first answer is whole
    assert e2 - s2 < SECOND and e2 == len(ids)


def test_message_scope_draws_once_per_answer(make_model):
    model = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=0.5, sst_scope="message")
    gen = torch.Generator().manual_seed(0)
    cut = []
    for _ in range(400):
        ids = collate_for(model, [two_turns()], generator=gen)["input_ids"][0]
        (s1, e1), (s2, e2) = _final_spans(ids, model)
        cut.append((e1 - s1 < FIRST, e2 - s2 < SECOND))
    first, second = (sum(c[i] for c in cut) / len(cut) for i in (0, 1))
    both = sum(a and b for a, b in cut) / len(cut)
    assert abs(first - 0.5) < 0.08 and abs(second - 0.5) < 0.08 and abs(both - 0.25) < 0.07


def test_scopes_agree_on_single_turn_examples(make_model):
    example = chat_example(n_spans=1, last=50)
    a = make_model(unmasked_audio_prob=0.0, quad_span_truncation_prob=0.5)
    b = make_model(unmasked_audio_prob=0.0, quad_span_truncation_prob=0.5, sst_scope="message")
    b.load_state_dict(a.state_dict())
    for seed in range(20):
        x, y = _collate(a, example, seed), _collate(b, example, seed)
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_message_scope_needs_the_message_opener(make_model):
    model = make_model()
    config = TtTConfig(audio_codebook_size=64, quad_span_truncation_prob=1.0, sst_scope="message")
    with pytest.raises(ValueError, match="sst_scope 'message' needs the <|im_start|> id"):
        truncate_last_span(model.encode(two_turns()), config)


def _masked_closers_batch(model):
    """A clean batch of one example whose two closing tokens (fixed span, final span) are masked."""
    v = model.vocab
    b = collate_for(model, [chat_example(n_spans=1, last=9)], train=False)
    closers = (b["labels"] == v.end_of_span) | (b["labels"] == v.end_of_last_span)
    b["masked"] = closers
    b["input_ids"] = torch.where(closers, v.mask, b["labels"])
    b["p_mask"] = torch.where(closers, 0.5, 1.0)
    b["n_maskable"] = torch.tensor([float(((b["modality"] == Modality.AUDIO_SPAN) | (b["modality"] == Modality.LAST_SPAN)).sum())])
    return b, closers


def test_masked_closer_text_target_adds_the_next_token_loss_there(make_model):
    model = make_model(unmasked_audio_prob=0.0)
    b, closers = _masked_closers_batch(model)
    ours = model(**b)
    model.config.masked_closer_text_target = True
    official = model(**b)
    assert torch.equal(official.audio_loss, ours.audio_loss)  # the closer is still its own audio target
    assert not torch.allclose(official.text_loss, ours.text_loss)

    # by hand: the text loss is the mean next-token CE over the text targets, closers included when official
    logits, labels = ours.logits[0].float(), b["labels"][0]
    text_ours, _ = model.targets(b["labels"], b["modality"], b["doc_ids"], b["trainable"], torch.zeros_like(closers))
    text_ours = text_ours[0] & ~closers[0]
    where = closers[0].nonzero().flatten()
    assert b["modality"][0, where + 1].tolist() == [Modality.TEXT] * 2 and int(labels[where[1] + 1]) == model.vocab.im_end
    ce = nn.functional.cross_entropy(logits[:-1], labels[1:], reduction="none")
    assert torch.allclose(ours.text_loss, ce[text_ours[:-1]].mean(), atol=1e-5)
    with_closers = text_ours.clone()
    with_closers[where] = True
    assert torch.allclose(official.text_loss, ce[with_closers[:-1]].mean(), atol=1e-5)
    model.config.masked_closer_text_target = False


def test_masked_closer_text_target_changes_nothing_without_masks(make_model):
    model = make_model(unmasked_audio_prob=0.0)
    b = collate_for(model, [chat_example(n_spans=1, last=9)], train=False)
    ours = model(**b)
    model.config.masked_closer_text_target = True
    assert torch.equal(model(**b).loss, ours.loss)
    model.config.masked_closer_text_target = False
