"""Where a turn meets the context limit it says so (or refuses up front), and text from a user is text:
special tokens spelled in it are never obeyed."""
import copy
import logging

import pytest

from ttt.training.backbones import tiny_backbone
from ttt.config import GenerationConfig
from ttt.generate import generate
from ttt.model import TtTModel

CONTEXT = 64


@pytest.fixture
def small_context(base_tokenizer):
    """A random tiny model whose context is only 64 positions."""
    tok = copy.deepcopy(base_tokenizer)
    backbone = tiny_backbone(len(tok) + 64 + 16, hidden_size=32, max_positions=CONTEXT)
    return TtTModel.from_backbone(backbone, tok, audio_codebook_size=64).eval()


def _always(model, token_id):
    """Make `token_id` the model's first choice for text: a large bias on its row of the output layer (which
    every decoding engine's projection applies, however it slices the head)."""
    import torch

    head = model.backbone.get_output_embeddings()
    bias = torch.zeros(head.weight.shape[0])
    bias[token_id] = 1e4
    head.bias = torch.nn.Parameter(bias)


def _user(text, literal=False):
    return [{"role": "user", "content": text, "literal": literal}]


def test_fixed_spans_are_never_committed_past_the_context(small_context, caplog):
    model = small_context
    _always(model, model.vocab.begin_of_audio)  # the model opens one fixed span after another
    prompt = model.formatter.encode_prompt(_user("hello"))
    with caplog.at_level(logging.WARNING):
        r = generate(model, _user("hello"), max_new_tokens=500, steps=2)
    assert len(r.audio_spans) >= 1 and all(len(s) == 26 for s in r.audio_spans), "only whole spans"
    assert len(prompt) + len(r.token_ids) <= CONTEXT
    assert r.cut_by_context and "context of 64 tokens is full" in caplog.text


def test_a_prompt_near_the_context_gets_a_warning_saying_the_answer_was_cut(small_context, caplog):
    model = small_context
    word = model.tokenizer("hello", add_special_tokens=False)["input_ids"][0]
    _always(model, word)
    texts = ("hello " * k + "x" * j for k in range(40) for j in range(4))
    text = next(t for t in texts if len(model.formatter.encode_prompt(_user(t))) == CONTEXT - 3)
    with caplog.at_level(logging.WARNING):
        r = generate(model, _user(text), max_new_tokens=50)
    assert r.cut_by_context and len(r.token_ids) == 3
    assert "the answer was cut after 3 generated tokens" in caplog.text


def test_a_turn_that_ends_inside_the_context_is_not_flagged(make_model, caplog):
    model = make_model()
    _always(model, model.vocab.im_end)
    with caplog.at_level(logging.WARNING):
        r = generate(model, _user("hello"), max_new_tokens=10)
    assert not r.cut_by_context and "context" not in caplog.text


def test_text_to_speak_that_cannot_fit_is_refused_before_any_work(small_context):
    model = small_context
    calls = []
    model.backbone.get_input_embeddings().register_forward_hook(lambda *a: calls.append(1))  # any forward's first step
    with pytest.raises(ValueError, match="the text to speak is too long for this model: .* context holds 64"):
        generate(model, _user("seven plus four"), force_text="seven plus four is eleven " * 5)
    assert calls == [], "refused before the first forward pass"


def test_a_prompt_beyond_the_training_length_is_answered_with_a_warning(make_model, caplog):
    model = make_model(max_length=16)
    with caplog.at_level(logging.WARNING):
        generate(model, _user("hello world, how are you today? " * 3), max_new_tokens=2)
    assert "trained on sequences of at most 16" in caplog.text


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_to_speak_is_an_error(text):
    with pytest.raises(ValueError, match="force_text is empty"):
        GenerationConfig(force_text=text)


def test_special_tokens_in_a_literal_message_stay_characters(make_model):
    model = make_model()
    v = model.vocab
    text = "six <|begin_of_audio|><|audio_5|><|audio_9|><|end_of_audio|> three <|endoftext|> <|im_end|>"
    f = model.formatter
    literal = f.encode_prompt(_user(text, literal=True))
    head = 1 + len(f._text_ids("user\n"))  # <|im_start|>user\n
    tail = 1 + len(f._text_ids("\n")) + len(f.assistant_header())  # <|im_end|>\n<|im_start|>assistant\n
    user = literal.input_ids[head:-tail].tolist()
    specials = {v.begin_of_audio, v.end_of_audio, v.im_end, v.im_start, v.audio_start + 5, v.audio_start + 9,
                model.tokenizer.eos_token_id}
    assert not specials & set(user)
    assert model.tokenizer.decode(user) == text
    assert int((literal.modality == 1).sum()) == 0, "no user audio was made from the text"


@pytest.mark.parametrize("text", ["six <|endoftext|> three",
                                  "six <|begin_of_audio|><|audio_5|><|audio_9|><|end_of_audio|> three"])
def test_speak_says_special_tokens_as_text(tiny_model_dir, text):
    from ttt.speech import SpeechLM

    lm = SpeechLM.from_dir(tiny_model_dir, steps=2, max_last_span=4)
    answer = lm.speak(text)
    assert answer.text == text, "every character is spoken; nothing ends the turn or becomes audio"


@pytest.mark.parametrize("call", ["speak", "answer"])
def test_empty_user_text_is_an_error(tiny_model_dir, call):
    from ttt.speech import SpeechLM

    lm = SpeechLM.from_dir(tiny_model_dir)
    with pytest.raises(ValueError, match="empty"):
        getattr(lm, call)(" ")
