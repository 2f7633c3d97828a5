"""Shared test data: tiny chat examples in the official format."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CODEBOOK = 64
WORDS = [
    "what is seven plus four", "seven plus four is eleven", "the capital of france is paris",
    "hello world, how are you today?", "Every evening, the dogs in our neighbourhood are howling.",
    "of the existence of which lavoisier was unaware in the fermented liquid",
]


def audio(codes) -> str:
    return "".join(f"<|audio_{c}|>" for c in codes)


def chat_example(n_spans: int = 2, last: int = 9, user_codes: int = 7) -> dict:
    """User speech -> assistant text with `n_spans` fixed 26-code spans and a final span of `last` codes."""
    spans = "".join(f" chunk {i}<|begin_of_audio|>{audio(range(i, i + 26))}<|end_of_audio_new|>" for i in range(n_spans))
    return {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": f"<|begin_of_audio|>{audio(range(user_codes))}<|end_of_audio|>"},
            {"role": "assistant", "content": f"{spans} the end<|begin_of_quad|>{audio(range(last))}<|end_of_audio_span_last|>"},
        ]
    }




LONG = chat_example(n_spans=1, last=9)
SHORT = {
    "messages": [
        {"role": "user", "content": "<|begin_of_audio|>" + audio([5, 6, 7]) + "<|end_of_audio|>"},
        {"role": "assistant", "content": "hi<|begin_of_quad|>" + audio([40, 41, 42, 43, 44]) + "<|end_of_audio_span_last|>"},
    ]
}

# The eval and speech tests' spoken question and answer.
QUESTION = "what is seven plus four"
ANSWER = "seven plus four is eleven"

# Debian's flite (the corpus's flite voices) is a system package: `make test` installs it where it can (root
# and apt-get); elsewhere the tests of those voices skip, saying so. Tests that only need some speech use
# piper, which installs with pip.
FLITE_MISSING = ("needs the system package flite, not installed here (`make test` installs it when run as "
                 "root with apt-get; else `sudo apt-get install flite`)")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason=FLITE_MISSING)


def require_flite() -> None:
    """Skip the calling fixture or test when flite is absent (for fixtures, where marks do not apply)."""
    if shutil.which("flite") is None:
        pytest.skip(FLITE_MISSING)
