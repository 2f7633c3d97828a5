"""Speech in, speech out: a TtT model and an audio codec behind three tasks (ASR, TTS, spoken chat).

The task is chosen by the system prompt the training data used (`ttt.format.SYSTEM`). A caller that
streams (`on_chunk`) gets audio vocoded as it is committed (a fixed span whole, the final span block by
block), so the first sound is ready long before the answer is finished (`SpokenAnswer.first_audio_s`,
`SpokenAnswer.chunks`); the whole answer's wave is vocoded in one piece at the end either way.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ttt.config import check_model_dir, load_decoding
from ttt.format import SYSTEM, input_audio
from ttt.generate import AudioSpan, Generation, GenerationResult, generate, generate_batch


log = logging.getLogger(__name__)


def default_model_dir() -> Path:
    return Path(str(resources.files("ttt") / "assets" / "model"))


def model_prompts(model_dir: str | Path) -> dict:
    """Per-task system prompts a model directory names in `prompts.json` (a model trained on other data, such
    as the released TtT checkpoint, answers best to its own prompts); {} keeps `ttt.format.SYSTEM`."""
    path = Path(model_dir) / "prompts.json"
    if not path.is_file():
        return {}
    prompts = json.loads(path.read_text())
    unknown = set(prompts) - set(SYSTEM)
    if unknown:
        raise ValueError(f"{path}: unknown tasks {sorted(unknown)} (known: {sorted(SYSTEM)})")
    return prompts


def model_codec(model_dir: str | Path) -> str | None:
    """The codec a model directory names in `codec.json` (an imported official model speaks GLM-4-Voice
    codes, not the shipped codec's), or None for the shipped codec."""
    path = Path(model_dir) / "codec.json"
    return json.loads(path.read_text())["codec"] if path.is_file() else None


@dataclass
class SpokenAnswer:
    """What a spoken turn produced: text, the wave of all its audio, and timings."""

    text: str
    wave: np.ndarray
    sample_rate: int
    result: GenerationResult
    first_audio_s: float | None = None  # when the first span's audio was ready (also when nobody streamed)
    chunks: list[np.ndarray] = field(default_factory=list)  # each span's audio as streamed; empty without on_chunk
    turn: list[dict] = field(default_factory=list)  # this turn's user + assistant messages, for `history`


def assistant_content(model, result: GenerationResult) -> str:
    """The assistant message a turn produced, in the model's own format (text interleaved with its audio
    spans), so that the turn can be fed back as history exactly as the model wrote it."""
    ids = list(result.token_ids)
    stops = {model.vocab.im_end, model.tokenizer.eos_token_id}
    while ids and ids[-1] in stops:
        ids.pop()
    return model.tokenizer.decode(ids)


class SpeechLM:
    """A TtT model with its codec; `from_dir` loads both (the shipped defaults when no path is given)."""

    def __init__(self, model, codec, system: dict | None = None, **generation) -> None:
        if model.config.audio_codebook_size != codec.codebook_size:
            raise ValueError(
                f"model expects {model.config.audio_codebook_size} audio codes but the codec has {codec.codebook_size}"
            )
        self.model, self.codec, self.generation = model, codec, generation
        self.system = {**SYSTEM, **(system or {})}  # per-task system prompts: the model's training data's

    @classmethod
    def from_dir(cls, model_dir: str | Path | None = None, codec_dir: str | Path | None = None,
                 device: str | None = None, **generation) -> "SpeechLM":
        """Model + codec, each a local folder or a hub id (`ttt.hub.resolve_dir`); decoding is the model's
        `decoding.json` overridden by `generation` (None = unset).

        `device` ("cpu", "cuda", "cuda:1", ...) holds the Transformer, in float32 on CPU and bfloat16 on a GPU
        (a 3B model needs ~7 GB); the codec stays on the CPU, where its small decoder and Griffin-Lim run anyway."""
        import torch

        from ttt.audio.codec import open_codec
        from ttt.hub import resolve_dir
        from ttt.model import TtTModel

        model_dir = check_model_dir(resolve_dir(model_dir) if model_dir else default_model_dir())
        target = torch_device(device)
        dtype = torch.float32 if target.type == "cpu" else torch.bfloat16  # float16 releases upcast on CPU
        model = TtTModel.from_pretrained(model_dir, dtype=dtype).eval().to(target)
        codec_spec = codec_dir or model_codec(model_dir)
        if codec_spec and ":" not in str(codec_spec):  # a folder or a hub id; TYPE:SOURCE goes to its adapter
            codec_spec = resolve_dir(codec_spec, what="codec")
        codec = open_codec(codec_spec)
        chosen = {k: v for k, v in generation.items() if v is not None}
        return cls(model, codec, system=model_prompts(model_dir), **{**load_decoding(model_dir), **chosen})

    def warm_up(self) -> None:
        """Speak one word, encode it back and throw both away, so that the next turn's timings (time to
        first audio, RTF) are those of a running service, not of the first call in a process: kernel
        selection, allocator growth and the lazy set-up of vocoder and Whisper encoder cost about 1.5 s
        once on CPU."""
        said = self.speak("one", max_last_span=8)
        if len(said.wave):
            self.codec.encode(said.wave, said.sample_rate)

    def _messages(self, task: str, user: str, literal: bool = False) -> list[dict]:
        """The task's conversation; `literal` marks user text, whose `<|...|>` must stay characters."""
        return [{"role": "system", "content": self.system[task]}, {"role": "user", "content": user, "literal": literal}]

    def audio_prompt(self, wave: np.ndarray, sample_rate: int) -> str:
        """A user message's content for spoken input: the wave's codec codes in the model's audio format
        (input that sounds like noise is warned about)."""
        from ttt.audio.io import noise_warning

        warning = noise_warning(wave, sample_rate, "input audio")
        if warning:
            log.warning(warning)
        return input_audio(self.codec.encode(wave, sample_rate))

    def transcribe(self, wave: np.ndarray, sample_rate: int, **kwargs) -> str:
        """ASR: the model's text for the speech."""
        messages = self._messages("asr", self.audio_prompt(wave, sample_rate))
        return generate(self.model, messages, **{**self.generation, **kwargs}).text.strip()

    def answer(self, question: str, **kwargs) -> str:
        """Text question -> text answer (the corpus's text chat task)."""
        if not question.strip():
            raise ValueError("the question is empty")
        messages = self._messages("text_chat", question, literal=True)
        return generate(self.model, messages, **{**self.generation, **kwargs}).text.strip()

    def transcribe_batch(self, audios: list[tuple[np.ndarray, int]], **kwargs) -> list[str]:
        """`transcribe` for many (wave, sample_rate) pairs, decoded together (`generate_batch`)."""
        conversations = [self._messages("asr", self.audio_prompt(w, sr)) for w, sr in audios]
        return [r.text.strip() for r in generate_batch(self.model, conversations, **{**self.generation, **kwargs})]

    def answer_batch(self, questions: list[str], **kwargs) -> list[str]:
        """`answer` for many questions, decoded together (`generate_batch`)."""
        if any(not q.strip() for q in questions):
            raise ValueError("a question is empty")
        conversations = [self._messages("text_chat", q, literal=True) for q in questions]
        return [r.text.strip() for r in generate_batch(self.model, conversations, **{**self.generation, **kwargs})]

    def speak(self, text: str, on_event: Callable | None = None, on_chunk: Callable | None = None,
              **kwargs) -> SpokenAnswer:
        """TTS: the model speaks exactly `text` (forced text, generated audio); callbacks as in `chat`.
        Special tokens spelled in it are spoken as characters, never obeyed."""
        if not text.strip():
            raise ValueError("nothing to speak: the text is empty")
        return self.respond(self._messages("tts", text, literal=True), on_event, on_chunk, force_text=text, **kwargs)

    def chat(self, wave: np.ndarray, sample_rate: int, on_event: Callable | None = None,
             history: list[dict] | None = None, on_chunk: Callable | None = None, **kwargs) -> SpokenAnswer:
        """Spoken question -> spoken answer; `on_event` sees each TextDelta / AudioSpan as it is produced,
        `on_chunk(span, wave)` each span's audio once vocoded.

        `history` holds earlier turns' messages (`answer.turn` of each, oldest first); they go between the
        system prompt and this question, so the model answers in the conversation. Keeping the history
        within the model's context is the caller's choice (`ttt.serve` drops the oldest turns)."""
        user = {"role": "user", "content": self.audio_prompt(wave, sample_rate)}
        messages = [{"role": "system", "content": SYSTEM["spoken_qa"]}, *(history or []), user]
        return self.respond(messages, on_event, on_chunk, **kwargs)

    def respond(self, messages: list[dict], on_event: Callable | None = None, on_chunk: Callable | None = None,
                **kwargs) -> SpokenAnswer:
        """The assistant's spoken turn after any `messages` (the building block of `chat` and `speak`, for
        apps that assemble their own prompts); `answer.turn` is the last message and the reply."""
        answer = self._spoken(messages, {**self.generation, **kwargs}, on_event, on_chunk)
        answer.turn = [messages[-1], {"role": "assistant", "content": assistant_content(self.model, answer.result)}]
        return answer

    def _spoken(self, messages: list[dict], kwargs: dict, on_event: Callable | None = None,
                on_chunk: Callable | None = None) -> SpokenAnswer:
        """Generate; with `on_chunk`, vocode each piece of audio as it arrives (the chunks a player streams).

        Without `on_chunk` only the first span is vocoded on the way, so that `first_audio_s` still says
        when a streaming player would have had sound; the rest waits for the whole-answer wave. Vocoding
        every span as well would do the vocoder's work twice for the same wave: the whole answer is vocoded
        in one piece either way."""
        start = time.perf_counter()
        gen = Generation(self.model, messages, **kwargs)
        chunks, first = [], None
        for event in gen:
            gen.result.events.append(event)
            if on_event is not None:
                on_event(event)
            if isinstance(event, AudioSpan) and event.codes and (on_chunk is not None or first is None):
                chunk = self.codec.decode(event.codes)[0]
                first = first if first is not None else time.perf_counter() - start
                if on_chunk is not None:
                    chunks.append(chunk)
                    on_chunk(event, chunk)
        codes = gen.result.audio_codes
        wave = self.codec.decode(codes)[0] if codes else np.zeros(0, dtype=np.float32)
        return SpokenAnswer(gen.result.text.strip(), wave, self.codec.sample_rate, gen.result, first, chunks)


def torch_device(name: str | None):
    """A torch device from a user's string, with a one-line error for a name torch rejects or a GPU that
    is not there (instead of a CUDA trace on the first forward pass)."""
    import torch

    if name is None:
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this torch build sees no CUDA GPU (torch {torch.__version__})")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device
