"""The interleaved chat format: build it, validate it, and encode it into ids + segments once.

An example is `{"messages": [{"role", "content"}, ...]}` in ChatML, where content mixes text and audio
tokens exactly as the official TtT data does, or `{"text": ...}` for plain (possibly interleaved) text.
A message with `"literal": True` is plain text from a user: `<|...|>` in it is spelled out character by
character, never read as a token (`ttt tts "six <|endoftext|> three"` must not end the turn).
Encoding walks each content string once, splitting at `<|...|>` tokens: text pieces go through the
tokenizer, special and audio tokens map straight to their vocabulary ids. The result carries, per token,
its modality and its audio-run index, which is all that masks, noising and loss need afterwards.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from ttt.vocab import (
    AUDIO_PATTERN,
    BEGIN_OF_AUDIO,
    BEGIN_OF_LAST_SPAN,
    END_OF_AUDIO,
    END_OF_LAST_SPAN,
    END_OF_SPAN,
    IM_END,
    IM_START,
    MASK,
    SPECIAL_PATTERN,
    Vocab,
    audio_token,
)

ROLES = ("system", "user", "assistant")
# The system prompt that selects each task: the corpus builder writes it into every training example and
# `SpeechLM` sends it at inference, so both must read it from here.
SYSTEM = {
    "asr": "Transcribe the speech.",
    "tts": "Read the text aloud.",
    "spoken_qa": "Answer the spoken question out loud.",
    "text_chat": "Answer the question.",
}


class Modality(enum.IntEnum):
    """What a token is; PAD marks collation padding."""

    PAD = -1
    TEXT = 0
    INPUT_AUDIO = 1  # codes of user audio: known at inference, never noised
    AUDIO_SPAN = 2  # codes of a fixed-length assistant span + its closing token
    LAST_SPAN = 3  # codes of the final variable-length span + its closing token
    SPAN_PAD = 4  # training only: mask tokens after the final span's closing token, in its run, no loss


# Which (opener, closer) pairs a role may use, and the modality of the codes between them.
_SPANS = {
    "user": {(BEGIN_OF_AUDIO, END_OF_AUDIO): Modality.INPUT_AUDIO},
    "assistant": {
        (BEGIN_OF_AUDIO, END_OF_SPAN): Modality.AUDIO_SPAN,
        (BEGIN_OF_LAST_SPAN, END_OF_LAST_SPAN): Modality.LAST_SPAN,
    },
}
_SPANS["system"] = _SPANS["user"]
_SPANS["text"] = {**_SPANS["user"], **_SPANS["assistant"]}
_OPENERS = (BEGIN_OF_AUDIO, BEGIN_OF_LAST_SPAN)
_CLOSERS = (END_OF_AUDIO, END_OF_SPAN, END_OF_LAST_SPAN)


@dataclass
class EncodedExample:
    """Token ids of one example with, per token, modality, audio-run index (1-based, 0 = none) and
    whether it is a training target (assistant turns; everything in plain-text examples)."""

    input_ids: torch.Tensor
    modality: torch.Tensor
    span: torch.Tensor
    trainable: torch.Tensor
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.input_ids.numel()

    def truncated(self, length: int) -> "EncodedExample":
        return EncodedExample(
            self.input_ids[:length], self.modality[:length], self.span[:length], self.trainable[:length], self.meta
        )


class _Builder:
    """Accumulates ids and segment tags while content strings are parsed."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.modality: list[int] = []
        self.span: list[int] = []
        self.trainable: list[bool] = []
        self.runs = 0

    def add(self, ids: list[int], modality: Modality, trainable: bool, span: int = 0) -> None:
        self.ids += ids
        self.modality += [int(modality)] * len(ids)
        self.span += [span] * len(ids)
        self.trainable += [trainable] * len(ids)

    def finish(self, meta: dict) -> EncodedExample:
        return EncodedExample(
            torch.tensor(self.ids, dtype=torch.long),
            torch.tensor(self.modality, dtype=torch.int8),
            torch.tensor(self.span, dtype=torch.int32),
            torch.tensor(self.trainable, dtype=torch.bool),
            meta,
        )


class Formatter:
    """Encodes examples for one tokenizer + vocabulary (see module docstring)."""

    def __init__(self, tokenizer, vocab: Vocab, bidirectional_input_audio: bool = True) -> None:
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.bidirectional_input_audio = bidirectional_input_audio
        self._known = set(tokenizer.get_vocab())
        self._newline = self._text_ids("\n")

    def _text_ids(self, text: str) -> list[int]:
        """Ids of plain text; a special token spelled in it stays characters (specials enter only as
        `<|...|>` matches in `_add_content`, or not at all for a literal message)."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] if text else []

    def encode(self, example: dict, index: int = 0) -> EncodedExample:
        """Validate and encode one example; `index` only names the example in error messages."""
        where = f"example {index}"
        if not isinstance(example, dict):
            raise ValueError(f"{where}: expected a dict with 'messages' or 'text', got {type(example).__name__}")
        b = _Builder()
        if "messages" in example:
            messages = example["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError(f"{where}: 'messages' must be a non-empty list")
            for m, message in enumerate(messages):
                self._add_message(b, message, f"{where}, message {m}")
            if not any(b.trainable):
                raise ValueError(f"{where}: no assistant message, nothing to train")
        elif "text" in example:
            text = example["text"]
            if not isinstance(text, str) or not text:
                raise ValueError(f"{where}: 'text' must be a non-empty string")
            self._add_content(b, text, "text", True, f"{where}, text")
        else:
            raise ValueError(f"{where}: expected key 'messages' or 'text', got {sorted(example)}")
        return b.finish({k: v for k, v in example.items() if k not in ("messages", "text")})

    def encode_prompt(self, messages: list[dict]) -> EncodedExample:
        """Encode a conversation for generation: its messages, then the assistant header."""
        b = _Builder()
        if not isinstance(messages, list) or not messages:
            raise ValueError("prompt: 'messages' must be a non-empty list")
        for m, message in enumerate(messages):
            self._add_message(b, message, f"prompt, message {m}")
        b.add(self.assistant_header(), Modality.TEXT, False)
        return b.finish({})

    def assistant_header(self) -> list[int]:
        """The ids that open an assistant turn (what generation starts after)."""
        return [self.vocab.im_start] + self._text_ids("assistant\n")

    def _add_message(self, b: _Builder, message: dict, where: str) -> None:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"{where}: a message needs 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"{where}: unknown role {role!r} (expected one of {ROLES})")
        if not isinstance(content, str):
            raise ValueError(f"{where}: content must be a string")
        train = role == "assistant"
        b.add([self.vocab.im_start] + self._text_ids(f"{role}\n"), Modality.TEXT, False)
        if message.get("literal"):
            b.add(self._text_ids(content), Modality.TEXT, train)
        else:
            self._add_content(b, content, role, train, f"{where} ({role})")
        b.add([self.vocab.im_end], Modality.TEXT, train)
        b.add(self._newline, Modality.TEXT, False)

    def _add_content(self, b: _Builder, content: str, role: str, train: bool, where: str) -> None:
        """Parse one content string; the span state machine here is the format's validator."""
        spans = _SPANS[role]
        open_tok, open_pos, codes = None, 0, []
        pos = 0
        for match in SPECIAL_PATTERN.finditer(content):
            text = content[pos : match.start()]
            if text:
                if open_tok is not None:
                    raise ValueError(f"{where}, char {pos}: text {text[:20]!r} inside an audio span")
                b.add(self._text_ids(text), Modality.TEXT, train)
            tok, pos = match.group(), match.end()
            at = f"{where}, char {match.start()}"
            code = AUDIO_PATTERN.fullmatch(tok)
            if code:
                c = int(code.group(1))
                if c >= self.vocab.codebook_size:
                    raise ValueError(f"{at}: audio code {c} >= codebook size {self.vocab.codebook_size}")
                if open_tok is None:
                    raise ValueError(f"{at}: audio code {tok} outside an audio span")
                codes.append(self.vocab.audio_start + c)
            elif tok in _OPENERS:
                if open_tok is not None:
                    raise ValueError(f"{at}: unbalanced span: {tok} inside the span opened at char {open_pos}")
                if not any(tok == o for o, _ in spans):
                    raise ValueError(f"{at}: {tok} is not allowed in a {role} message")
                open_tok, open_pos, codes = tok, match.start(), []
                b.add([self.tokenizer.convert_tokens_to_ids(tok)], Modality.TEXT, train)
            elif tok in _CLOSERS:
                if open_tok is None:
                    raise ValueError(f"{at}: unbalanced span: {tok} without an opening token")
                kind = spans.get((open_tok, tok))
                if kind is None:
                    raise ValueError(f"{at}: unbalanced span: {open_tok} (char {open_pos}) closed by {tok}")
                if not codes:
                    raise ValueError(f"{at}: empty audio span")
                self._add_run(b, codes, tok, kind, train)
                open_tok = None
            elif tok == MASK:
                raise ValueError(f"{at}: {MASK} in data (masking is applied during training, not stored)")
            elif tok in (IM_START, IM_END):
                raise ValueError(f"{at}: {tok} inside content (the chat template adds it)")
            elif tok in self._known:
                b.add([self.tokenizer.convert_tokens_to_ids(tok)], Modality.TEXT, train)
            else:
                raise ValueError(f"{at}: unknown token {tok}")
        if open_tok is not None:
            raise ValueError(f"{where}, char {open_pos}: unbalanced span: {open_tok} never closed")
        rest = content[pos:]
        if rest:
            b.add(self._text_ids(rest), Modality.TEXT, train)

    def _add_run(self, b: _Builder, codes: list[int], closer: str, kind: Modality, train: bool) -> None:
        if kind == Modality.INPUT_AUDIO:
            span = 0
            if self.bidirectional_input_audio:
                b.runs += 1
                span = b.runs
            b.add(codes, kind, False, span)
            b.add([self.vocab.end_of_audio], Modality.TEXT, False)
            return
        b.runs += 1
        closer_id = self.tokenizer.convert_tokens_to_ids(closer)
        b.add(codes + [closer_id], kind, train, b.runs)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Ids back to the format's text (audio codes as `<|audio_N|>`)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def input_audio(codes: list[int]) -> str:
    """User/input speech as content: `<|begin_of_audio|>` codes `<|end_of_audio|>`."""
    if not codes:
        raise ValueError("input audio needs at least one code")
    return BEGIN_OF_AUDIO + "".join(audio_token(c) for c in codes) + END_OF_AUDIO


def interleave(text: str, codes: list[int], tokenizer, text_chunk: int = 13, audio_chunk: int = 26) -> str:
    """Assistant content that speaks `text` with `codes`, GLM-4-Voice style.

    Every `text_chunk` text tokens are followed by a fixed span of `audio_chunk` codes; the last text
    chunk is followed by the final variable-length span holding all remaining codes. When the audio runs
    short, the remaining text joins the last chunk, so the final span always holds at least one code.
    """
    if text_chunk <= 0 or audio_chunk <= 0:
        raise ValueError(f"chunk sizes must be positive, got text {text_chunk}, audio {audio_chunk}")
    if not codes:
        raise ValueError("interleave needs at least one audio code")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    parts, t, a = [], 0, 0
    while len(ids) - t > text_chunk and len(codes) - a > audio_chunk:
        chunk = tokenizer.decode(ids[t : t + text_chunk], clean_up_tokenization_spaces=False)
        span = "".join(audio_token(c) for c in codes[a : a + audio_chunk])
        parts.append(chunk + BEGIN_OF_AUDIO + span + END_OF_SPAN)
        t, a = t + text_chunk, a + audio_chunk
    last = tokenizer.decode(ids[t:], clean_up_tokenization_spaces=False)
    parts.append(last + BEGIN_OF_LAST_SPAN + "".join(audio_token(c) for c in codes[a:]) + END_OF_LAST_SPAN)
    return "".join(parts)
