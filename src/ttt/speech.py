"""Speech in, speech out: a TtT model and an audio codec behind three tasks (ASR, TTS, spoken chat).

The task is chosen by the system prompt the training data used (`ttt.build_data.SYSTEM`). Audio is
vocoded as it is committed (a fixed span whole, the final span block by block), so the first sound is ready long before the answer is finished
(`SpokenAnswer.first_audio_s`, `SpokenAnswer.chunks`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ttt.build_data import SYSTEM
from ttt.format import input_audio
from ttt.generate import AudioSpan, Generation, GenerationResult, generate, generate_batch


DECODING_FILE = "decoding.json"  # a model directory's recommended GenerationConfig fields


def default_model_dir() -> Path:
    return Path(str(resources.files("ttt") / "assets" / "model"))


def decoding_defaults(model_dir: str | Path) -> dict:
    """The decoding settings a model directory recommends (`decoding.json`), or none.

    Denoising steps, the stop threshold and the final-span cap are chosen per model on validation data;
    keeping them next to the weights means `ttt demo` and `ttt eval` decode a model the way it was measured."""
    path = Path(model_dir) / DECODING_FILE
    if not path.is_file():
        return {}
    settings = json.loads(path.read_text())
    from ttt.generate import GenerationConfig

    GenerationConfig(**settings)  # unknown keys and bad values fail here, naming the field
    return settings


@dataclass
class SpokenAnswer:
    """What a spoken turn produced: text, the wave of all its audio, and timings."""

    text: str
    wave: np.ndarray
    sample_rate: int
    result: GenerationResult
    first_audio_s: float | None = None
    chunks: list[np.ndarray] = field(default_factory=list)


class SpeechLM:
    """A TtT model with its codec; `from_dir` loads both (the shipped defaults when no path is given)."""

    def __init__(self, model, codec, **generation) -> None:
        if model.config.audio_codebook_size != codec.codebook_size:
            raise ValueError(
                f"model expects {model.config.audio_codebook_size} audio codes but the codec has {codec.codebook_size}"
            )
        self.model, self.codec, self.generation = model, codec, generation

    @classmethod
    def from_dir(cls, model_dir: str | Path | None = None, codec_dir: str | Path | None = None, **generation) -> "SpeechLM":
        """Model + codec; decoding is the model's `decoding.json` overridden by `generation` (None = unset)."""
        import torch

        from ttt.audio.codec import load_codec, load_default_codec
        from ttt.model import TtTModel

        model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (model_dir / "ttt_config.json").is_file():
            raise FileNotFoundError(f"no TtT model in {model_dir}")
        model = TtTModel.from_pretrained(model_dir, dtype=torch.float32).eval()  # float16 releases upcast
        codec = load_codec(codec_dir) if codec_dir else load_default_codec()
        chosen = {k: v for k, v in generation.items() if v is not None}
        return cls(model, codec, **{**decoding_defaults(model_dir), **chosen})

    def warm_up(self) -> None:
        """Speak one word, encode it back and throw both away, so that the next turn's timings (time to
        first audio, RTF) are those of a running service, not of the first call in a process: kernel
        selection, allocator growth and the lazy set-up of vocoder and Whisper encoder cost about 1.5 s
        once on CPU."""
        said = self.speak("one", max_last_span=8)
        if len(said.wave):
            self.codec.encode(said.wave, said.sample_rate)

    def _messages(self, task: str, user: str) -> list[dict]:
        return [{"role": "system", "content": SYSTEM[task]}, {"role": "user", "content": user}]

    def _audio_prompt(self, wave: np.ndarray, sample_rate: int) -> str:
        return input_audio(self.codec.encode(wave, sample_rate))

    def transcribe(self, wave: np.ndarray, sample_rate: int, **kwargs) -> str:
        """ASR: the model's text for the speech."""
        messages = self._messages("asr", self._audio_prompt(wave, sample_rate))
        return generate(self.model, messages, **{**self.generation, **kwargs}).text.strip()

    def answer(self, question: str, **kwargs) -> str:
        """Text question -> text answer (the corpus's text chat task)."""
        messages = self._messages("text_chat", question)
        return generate(self.model, messages, **{**self.generation, **kwargs}).text.strip()

    def transcribe_batch(self, audios: list[tuple[np.ndarray, int]], **kwargs) -> list[str]:
        """`transcribe` for many (wave, sample_rate) pairs, decoded together (`generate_batch`)."""
        conversations = [self._messages("asr", self._audio_prompt(w, sr)) for w, sr in audios]
        return [r.text.strip() for r in generate_batch(self.model, conversations, **{**self.generation, **kwargs})]

    def answer_batch(self, questions: list[str], **kwargs) -> list[str]:
        """`answer` for many questions, decoded together (`generate_batch`)."""
        conversations = [self._messages("text_chat", q) for q in questions]
        return [r.text.strip() for r in generate_batch(self.model, conversations, **{**self.generation, **kwargs})]

    def speak(self, text: str, **kwargs) -> SpokenAnswer:
        """TTS: the model speaks exactly `text` (forced text, generated audio)."""
        messages = self._messages("tts", text)
        return self._spoken(messages, {**self.generation, "force_text": text, **kwargs})

    def chat(self, wave: np.ndarray, sample_rate: int, on_event: Callable | None = None, **kwargs) -> SpokenAnswer:
        """Spoken question -> spoken answer; `on_event` sees each TextDelta / AudioSpan as it is produced."""
        messages = self._messages("spoken_qa", self._audio_prompt(wave, sample_rate))
        return self._spoken(messages, {**self.generation, **kwargs}, on_event)

    def _spoken(self, messages: list[dict], kwargs: dict, on_event: Callable | None = None) -> SpokenAnswer:
        """Generate, vocoding each piece of audio as it arrives (the chunks a player would stream)."""
        start = time.perf_counter()
        gen = Generation(self.model, messages, **kwargs)
        chunks, first = [], None
        for event in gen:
            gen.result.events.append(event)
            if on_event is not None:
                on_event(event)
            if isinstance(event, AudioSpan) and event.codes:
                chunks.append(self.codec.decode(event.codes)[0])
                first = first if first is not None else time.perf_counter() - start
        codes = gen.result.audio_codes
        wave = self.codec.decode(codes)[0] if codes else np.zeros(0, dtype=np.float32)
        return SpokenAnswer(gen.result.text.strip(), wave, self.codec.sample_rate, gen.result, first, chunks)
