"""One vocabulary for text, audio codes and the TtT specials.

The token strings are those of the official TtT data (GLM-4-Voice style), so data written for the
reference trains here unchanged. Audio codes are real vocabulary entries `<|audio_N|>` with
*contiguous* ids, so "is this an audio code" is one range check on an id tensor and a code is
`id - audio_start`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

BEGIN_OF_AUDIO = "<|begin_of_audio|>"  # opens user input audio and every fixed assistant span
END_OF_AUDIO = "<|end_of_audio|>"  # closes user input audio
END_OF_SPAN = "<|end_of_audio_new|>"  # closes a fixed-length assistant span
BEGIN_OF_LAST_SPAN = "<|begin_of_quad|>"  # opens the final, variable-length assistant span
END_OF_LAST_SPAN = "<|end_of_audio_span_last|>"  # closes it: the model's "speech is over" decision
MASK = "<|mask_token|>"  # the absorbing state of the diffusion
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

TTT_SPECIALS = (BEGIN_OF_AUDIO, END_OF_AUDIO, END_OF_SPAN, BEGIN_OF_LAST_SPAN, END_OF_LAST_SPAN, MASK)
CHAT_SPECIALS = (IM_START, IM_END)
SPECIAL_PATTERN = re.compile(r"<\|[^<>|]*\|>")
AUDIO_PATTERN = re.compile(r"<\|audio_(\d+)\|>")


def audio_token(code: int) -> str:
    return f"<|audio_{code}|>"


@dataclass(frozen=True)
class Vocab:
    """Ids of the TtT tokens in one tokenizer."""

    begin_of_audio: int
    end_of_audio: int
    end_of_span: int
    begin_of_last_span: int
    end_of_last_span: int
    mask: int
    im_start: int
    im_end: int
    audio_start: int
    codebook_size: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer, codebook_size: int) -> "Vocab":
        """Read the ids from a tokenizer that already holds the TtT tokens (see `add_ttt_tokens`)."""
        ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in (*TTT_SPECIALS, *CHAT_SPECIALS)}
        unk = tokenizer.unk_token_id
        missing = [tok for tok, i in ids.items() if i is None or (unk is not None and i == unk)]
        if missing:
            raise ValueError(f"tokenizer lacks TtT tokens {missing}; call ttt.vocab.add_ttt_tokens first")
        first = tokenizer.convert_tokens_to_ids(audio_token(0))
        last = tokenizer.convert_tokens_to_ids(audio_token(codebook_size - 1))
        if first is None or last is None or last - first != codebook_size - 1 or first == unk:
            raise ValueError(
                f"audio tokens <|audio_0|>..<|audio_{codebook_size - 1}|> must exist with contiguous ids "
                f"(got {first}..{last})"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[IM_END]
        return cls(
            begin_of_audio=ids[BEGIN_OF_AUDIO],
            end_of_audio=ids[END_OF_AUDIO],
            end_of_span=ids[END_OF_SPAN],
            begin_of_last_span=ids[BEGIN_OF_LAST_SPAN],
            end_of_last_span=ids[END_OF_LAST_SPAN],
            mask=ids[MASK],
            im_start=ids[IM_START],
            im_end=ids[IM_END],
            audio_start=first,
            codebook_size=codebook_size,
            pad=pad,
        )

    def is_code(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.audio_start) & (ids < self.audio_start + self.codebook_size)

    def code_id(self, code: int) -> int:
        if not 0 <= code < self.codebook_size:
            raise ValueError(f"audio code {code} outside the codebook [0, {self.codebook_size})")
        return self.audio_start + code

    @property
    def span_closers(self) -> tuple[int, int]:
        return (self.end_of_span, self.end_of_last_span)


def add_ttt_tokens(tokenizer, codebook_size: int) -> Vocab:
    """Add chat, TtT and audio-code tokens to `tokenizer` (in place) and return their ids.

    Tokens already present are kept, so a tokenizer that ships GLM-4-Voice audio tokens is reused as is.
    """
    if codebook_size <= 0:
        raise ValueError(f"audio_codebook_size must be positive, got {codebook_size}")
    vocab = tokenizer.get_vocab()
    specials = [t for t in (*CHAT_SPECIALS, *TTT_SPECIALS) if t not in vocab]
    if specials:
        tokenizer.add_tokens(specials, special_tokens=True)
    codes = [audio_token(c) for c in range(codebook_size) if audio_token(c) not in vocab]
    if codes:
        tokenizer.add_tokens(codes, special_tokens=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = IM_END
    return Vocab.from_tokenizer(tokenizer, codebook_size)


EOS = "<|endoftext|>"  # end of text of the tokenizers trained here


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Byte-level BPE (as Qwen2/GPT-2) trained on `texts`, as a `PreTrainedTokenizerFast`; any string stays
    encodable via bytes. Models trained from scratch (the default model, tests, benchmarks) use it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOS],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)
