"""Format: official data parses and round-trips; the builder interleaves; the validator names the fault."""
import pytest
import torch

from helpers import audio, chat_example
from ttt.format import Modality, input_audio, interleave
from ttt.training.collate import collate_for


def test_official_samples_parse_and_round_trip(make_model, official_samples):
    model = make_model(codebook=16384)
    for i, example in enumerate(official_samples):
        enc = model.encode(example, i)
        text = model.formatter.decode(enc.input_ids)
        for message in example["messages"]:
            assert f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n" in text
        assert text == "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in example["messages"])
        n_codes = sum(m["content"].count("<|audio_") for m in example["messages"])
        assert int(model.vocab.is_code(enc.input_ids).sum()) == n_codes


def test_segments_of_a_chat_example(make_model):
    model = make_model()
    enc = model.encode(chat_example(n_spans=2, last=9, user_codes=7))
    ids, mod, span, train = enc.input_ids, enc.modality, enc.span, enc.trainable
    assert int((mod == Modality.INPUT_AUDIO).sum()) == 7
    assert int((mod == Modality.AUDIO_SPAN).sum()) == 2 * 27  # 26 codes + closing token each
    assert int((mod == Modality.LAST_SPAN).sum()) == 10
    assert torch.equal(torch.unique(span[span > 0]), torch.tensor([1, 2, 3, 4], dtype=span.dtype))
    closers = (ids == model.vocab.end_of_span) | (ids == model.vocab.end_of_last_span)
    assert bool((mod[closers] != Modality.TEXT).all()) and bool(train[closers].all())
    assert not bool(train[mod == Modality.INPUT_AUDIO].any())
    openers = (ids == model.vocab.begin_of_audio) | (ids == model.vocab.begin_of_last_span)
    assert bool((mod[openers] == Modality.TEXT).all())
    im_end = (ids == model.vocab.im_end).nonzero().flatten()
    assert bool(train[im_end[-1]]) and not bool(train[im_end[0]])  # assistant's im_end is a target


def test_input_audio_can_be_causal(make_model):
    model = make_model(bidirectional_input_audio=False)
    enc = model.encode(chat_example())
    assert bool((enc.span[enc.modality == Modality.INPUT_AUDIO] == 0).all())


def test_plain_text_examples_train_everywhere(make_model):
    enc = make_model().encode({"text": "hello world"})
    assert bool(enc.trainable.all()) and bool((enc.modality == Modality.TEXT).all())


def test_interleave_default_ratio(make_model):
    model = make_model(codebook=100)
    text = "of the existence of which lavoisier was unaware in the fermented liquid " * 3
    codes = list(range(90))
    content = interleave(text, codes, model.tokenizer)
    n_text = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert content.count("<|begin_of_audio|>") == min((n_text - 1) // 13, (90 - 1) // 26)
    first_span = content.split("<|begin_of_audio|>")[1].split("<|end_of_audio_new|>")[0]
    assert first_span == audio(range(26))
    head = content.split("<|begin_of_audio|>")[0]
    assert len(model.tokenizer(head, add_special_tokens=False)["input_ids"]) == 13
    assert content.endswith("<|end_of_audio_span_last|>") and content.count("<|begin_of_quad|>") == 1
    stripped = content
    for tok in ("<|begin_of_audio|>", "<|end_of_audio_new|>", "<|begin_of_quad|>", "<|end_of_audio_span_last|>"):
        stripped = stripped.replace(tok, "")
    for c in codes:
        stripped = stripped.replace(f"<|audio_{c}|>", "", 1)
    assert stripped == text
    enc = model.encode({"messages": [{"role": "user", "content": input_audio([1, 2])}, {"role": "assistant", "content": content}]})
    assert int(model.vocab.is_code(enc.input_ids).sum()) == 92


def test_interleave_custom_ratio_and_short_audio(make_model):
    model = make_model()
    content = interleave("seven plus four is eleven and more words here", [5, 6, 7], model.tokenizer, 2, 2)
    assert content.count("<|begin_of_audio|>") == 1
    assert content.endswith(f"<|begin_of_quad|>{audio([7])}<|end_of_audio_span_last|>")


BAD = [
    ({"messages": []}, "example 3: 'messages' must be a non-empty list"),
    ({"messages": [{"role": "assistant", "content": "hi <|nonsense|>"}]}, "example 3, message 0 (assistant), char 3: unknown token <|nonsense|>"),
    ({"messages": [{"role": "assistant", "content": "a<|begin_of_quad|><|audio_64|><|end_of_audio_span_last|>"}]}, "char 18: audio code 64 >= codebook size 64"),
    ({"messages": [{"role": "assistant", "content": "a<|begin_of_audio|><|audio_1|>"}]}, "char 1: unbalanced span: <|begin_of_audio|> never closed"),
    ({"messages": [{"role": "assistant", "content": "a<|audio_1|><|end_of_audio_new|>"}]}, "char 1: audio code <|audio_1|> outside an audio span"),
    ({"messages": [{"role": "assistant", "content": "a<|begin_of_audio|><|audio_1|><|end_of_audio_span_last|>"}]}, "closed by <|end_of_audio_span_last|>"),
    ({"messages": [{"role": "assistant", "content": "a<|begin_of_audio|><|audio_1|>x<|end_of_audio_new|>"}]}, "text 'x' inside an audio span"),
    ({"messages": [{"role": "assistant", "content": "<|begin_of_audio|><|end_of_audio_new|>"}]}, "empty audio span"),
    ({"messages": [{"role": "assistant", "content": "<|mask_token|>"}]}, "<|mask_token|> in data"),
    ({"messages": [{"role": "user", "content": "<|begin_of_quad|><|audio_1|><|end_of_audio_span_last|>"}]}, "not allowed in a user message"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
    ({"prompt": "hi"}, "expected key 'messages' or 'text'"),
]


@pytest.mark.parametrize("example,message", BAD)
def test_bad_examples_name_example_and_position(make_model, example, message):
    with pytest.raises(ValueError) as err:
        make_model().encode(example, 3)
    assert message in str(err.value)
    assert str(err.value).startswith("example 3")


def test_collate_names_the_bad_example(make_model):
    with pytest.raises(ValueError, match="example 1, message 0"):
        collate_for(make_model(), [chat_example(), {"messages": [{"role": "assistant", "content": "<|audio_1|>"}]}])
