"""Text and audio metrics: normalised WER/CER, mel-cepstral distortion with DTW, bootstrap CIs.

Text normalisation (`normalize`), applied to references and hypotheses alike before WER/CER, so
that an ASR's formatting choices are not counted as errors:

1. Unicode NFKC, lower-case;
2. hyphens and slashes become spaces ("twenty-one" → "twenty one");
3. integers written in digits become words, 0–999 999 ("7" → "seven", "21" → "twenty one",
   "1,000" → "one thousand"); other digits are kept as they are;
4. every other character that is not a letter, digit, apostrophe or space is removed;
5. "colour" → "color" (the corpus and Whisper use American spelling);
6. runs of whitespace collapse to one space; leading/trailing spaces are stripped.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SPELLING = {"colour": "color", "colours": "colors"}


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1 000 000, without "and" ("one hundred five")."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_to_words handles 0..999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    rest = n % 1000
    return number_to_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_to_words(rest))


def _spell_number(match: re.Match) -> str:
    digits = match.group(0).replace(",", "")
    value = int(digits)
    return f" {number_to_words(value)} " if value < 1_000_000 else digits


def normalize(text: str) -> str:
    """Canonical form for scoring; see the module docstring for the exact rules."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string to normalise, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[-/]", " ", text)
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+", _spell_number, text)
    text = re.sub(r"[^\w' ]|_", " ", text)
    words = [_SPELLING.get(w, w) for w in text.split()]
    return " ".join(words)


def _pairs(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> tuple[list[str], list[str]]:
    refs = [refs] if isinstance(refs, str) else list(refs)
    hyps = [hyps] if isinstance(hyps, str) else list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("need at least one reference/hypothesis pair")
    refs, hyps = [normalize(r) for r in refs], [normalize(h) for h in hyps]
    if any(not r for r in refs):
        raise ValueError("a reference is empty after normalisation; WER is undefined for it")
    return refs, hyps


def wer(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> float:
    """Corpus word error rate (total edits / total reference words) after `normalize`."""
    import jiwer

    refs, hyps = _pairs(refs, hyps)
    return float(jiwer.wer(refs, hyps))


def cer(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> float:
    """Corpus character error rate after `normalize` (spaces count as characters)."""
    import jiwer

    refs, hyps = _pairs(refs, hyps)
    return float(jiwer.cer(refs, hyps))


def check_wave(wave: np.ndarray, sample_rate: int, name: str = "wave") -> np.ndarray:
    """`ttt.audio.io.check_wave` for scoring: silence is a valid (bad) output, not an error."""
    from ttt.audio.io import check_wave as check

    return check(wave, sample_rate, name=name, allow_silent=True)


def mel_cepstrum(wave: np.ndarray, sample_rate: int, n_mels: int = 40, n_ceps: int = 25,
                 frame_ms: float = 25.0, hop_ms: float = 5.0) -> np.ndarray:
    """Mel cepstra (frames x n_ceps, c0 included) of the log *amplitude* mel spectrum, scaled as the
    cosine series log|X(w)| = c0 + 2·sum_d c_d·cos(d·w) (DCT-II / 2N): the natural-log cepstrum that
    the MCD constant 10/ln10·sqrt(2·...) assumes."""
    import librosa
    from scipy.fft import dct

    wave = check_wave(wave, sample_rate)
    n_fft = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    if wave.size < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.size))
    power = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop, window="hann",
                                center=False)) ** 2
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    log_amplitude = 0.5 * np.log(np.maximum(mel @ power, 1e-10))
    return (dct(log_amplitude, type=2, axis=0) / (2 * n_mels))[:n_ceps].T


def _dtw_path_cost(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Sum of Euclidean frame distances along the best DTW path (steps (1,1), (1,0), (0,1)) and the
    path length. Each row of the cost matrix is one numpy pass: the left-neighbour recursion
    c[j] = d[j] + min(up_or_diag[j], c[j-1]) unrolls to a running minimum over cumulative sums."""
    from scipy.spatial.distance import cdist

    dist = cdist(a, b)
    n, m = dist.shape
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        d = dist[i - 1]
        from_above = np.minimum(cost[i - 1, :-1], cost[i - 1, 1:])
        cumulative = np.cumsum(d)
        cost[i, 1:] = cumulative + np.minimum.accumulate(from_above - cumulative + d)
    i, j, length = n, m, 1
    while (i, j) != (1, 1):
        _, i, j = min((cost[i - 1, j - 1], i - 1, j - 1), (cost[i - 1, j], i - 1, j),
                      (cost[i, j - 1], i, j - 1))
        length += 1
    return float(cost[n, m]), length


def mcd_dtw(ref_wave: np.ndarray, hyp_wave: np.ndarray, sample_rate: int) -> float:
    """Mel-cepstral distortion in dB between two renderings of the same text, DTW-aligned.

    MCD = 10/ln(10) · sqrt(2 · Σ_{d≥1} (c_d − ĉ_d)²), averaged over the DTW path; c0 (energy) is
    excluded so loudness does not count. Cepstra come from `mel_cepstrum` (natural-log mel power,
    orthonormal DCT), so values are comparable between runs of this code, not with other toolkits.
    """
    ref = mel_cepstrum(check_wave(ref_wave, sample_rate, "ref_wave"), sample_rate)[:, 1:]
    hyp = mel_cepstrum(check_wave(hyp_wave, sample_rate, "hyp_wave"), sample_rate)[:, 1:]
    total, length = _dtw_path_cost(ref, hyp)
    return 10.0 / math.log(10.0) * math.sqrt(2.0) * total / length


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 ) -> tuple[float, float, float]:
    """(statistic, low, high): percentile bootstrap confidence interval over per-item values."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence of values, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contain NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_resamples, values.size))
    stats = np.array([statistic(values[row]) for row in idx])
    alpha = (1 - confidence) / 2
    return (float(statistic(values)), float(np.quantile(stats, alpha)),
            float(np.quantile(stats, 1 - alpha)))
