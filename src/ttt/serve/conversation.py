"""One client's conversation: its history (capped), its decoding settings, and how a turn runs.

A turn runs synchronously (in a worker thread of the server) and reports what it produces through `emit`,
one JSON-ready dict per event, so the caller can stream them; `cancel` stops it at its next event (a client
that went away frees the model at once instead of after its whole answer)."""
from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ttt.generate import AudioSpan, Generation, TextDelta
from ttt.serve.audio_input import wav_bytes
from ttt.format import SYSTEM
from ttt.speech import SpeechLM, SpokenAnswer


class TurnCancelled(Exception):
    """The client left (or reset) while its turn was running."""


@dataclass
class Conversation:
    """History of (user, assistant) message pairs, oldest first, and this client's decoding settings.

    At most `max_turns` earlier turns are kept, and fewer when they would not leave `reserve` tokens of the
    model's context for the answer: the oldest go first."""

    settings: dict
    max_turns: int = 4
    reserve: int = 320
    history: list[list[dict]] = field(default_factory=list)
    turns: int = 0

    def reset(self) -> None:
        self.history.clear()

    def remember(self, turn: list[dict]) -> None:
        """Keep a finished turn, forgetting the oldest beyond `max_turns`."""
        self.history.append(turn)
        del self.history[: max(0, len(self.history) - self.max_turns)]

    def fitted(self, lm: SpeechLM, system: str, user: dict) -> list[dict]:
        """The earlier turns' messages to send with `user`, dropping the oldest until the prompt fits."""
        context = getattr(lm.model.backbone.config, "max_position_embeddings", None) or 1 << 30
        while True:
            messages = [m for pair in self.history for m in pair]
            prompt = lm.model.formatter.encode_prompt([{"role": "system", "content": system}, *messages, user])
            if len(prompt) + self.reserve <= context:
                return messages
            if not self.history:
                raise ValueError(f"the question takes {len(prompt)} tokens; with {self.reserve} kept for the "
                                 f"answer it does not fit the model's context of {context}")
            self.history.pop(0)


def run_turn(lm: SpeechLM, conversation: Conversation, emit: Callable[[dict], None], cancel: threading.Event,
             wave: np.ndarray | None = None, sample_rate: int | None = None, text: str | None = None,
             transcribe: bool = True) -> tuple[dict, SpokenAnswer | None]:
    """Answer one turn (spoken question `wave`, or typed question `text`) in speech, streaming events.

    A spoken question is answered by the spoken-QA task directly. A typed one is answered in text by the
    text-chat task (the model was trained to answer typed questions in text only), then spoken by the TTS
    task, so both kinds of turn end in speech. Returns the `done` event and the
    answer (None when the model wrote no text to speak)."""
    if wave is None and not (text or "").strip():
        raise ValueError("empty text message")
    conversation.turns += 1
    turn, start = conversation.turns, time.perf_counter()
    first_audio: list[float] = []

    def check() -> None:
        if cancel.is_set():
            raise TurnCancelled()

    def on_text(event) -> None:
        check()
        if isinstance(event, TextDelta) and event.text:
            emit({"type": "text", "turn": turn, "delta": event.text})

    def on_chunk(span: AudioSpan, chunk: np.ndarray) -> None:
        check()
        if not first_audio:
            first_audio.append(time.perf_counter() - start)
        emit({"type": "audio", "turn": turn, "span": span.index, "last": span.last, "closed": span.closed,
              "codes": len(span.codes), "seconds": round(len(chunk) / lm.codec.sample_rate, 3),
              "wav": base64.b64encode(wav_bytes(chunk, lm.codec.sample_rate)).decode("ascii")})

    settings = conversation.settings
    if wave is not None:
        user = {"role": "user", "content": lm.audio_prompt(wave, sample_rate)}
        emit({"type": "turn", "turn": turn, "input": "audio", "seconds": round(len(wave) / sample_rate, 2)})
        history = conversation.fitted(lm, SYSTEM["spoken_qa"], user)
        answer = lm.respond([{"role": "system", "content": SYSTEM["spoken_qa"]}, *history, user],
                            on_text, on_chunk, **settings)
        text_out = answer.text
    else:
        text = text.strip()
        user = {"role": "user", "content": text, "literal": True}  # typed text is text, never tokens
        emit({"type": "turn", "turn": turn, "input": "text", "text": text})
        history = conversation.fitted(lm, SYSTEM["text_chat"], user)
        messages = [{"role": "system", "content": SYSTEM["text_chat"]}, *history, user]
        written = Generation(lm.model, messages, **{**lm.generation, **settings})
        for event in written:
            on_text(event)
        text_out = written.result.text.strip()
        answer = lm.speak(text_out, on_chunk=on_chunk, on_event=lambda e: check(), **settings) if text_out else None
    check()
    assistant = answer.turn[1] if answer is not None else {"role": "assistant", "content": text_out}
    conversation.remember([user, assistant])
    done = {"type": "done", "turn": turn, "text": text_out, "history_turns": len(conversation.history),
            "first_audio_s": round(first_audio[0], 3) if first_audio else None,
            "wall_s": round(time.perf_counter() - start, 3),
            "audio_seconds": round(_seconds(answer), 3)}
    if wave is not None and transcribe:
        done["heard"] = lm.transcribe(wave, sample_rate, **settings)
    return done, answer


def _seconds(answer: SpokenAnswer | None) -> float:
    return 0.0 if answer is None else len(answer.wave) / answer.sample_rate
