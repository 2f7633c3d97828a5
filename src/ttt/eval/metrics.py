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
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from num2words import num2words

_SPELLING = {"colour": "color", "colours": "colors"}


@lru_cache(maxsize=4096)
def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1 000 000 as the corpus writes them: num2words's cardinal without
    "and", hyphens or commas ("one hundred five", "twenty one", "one thousand one hundred"). Cached:
    num2words takes ~0.2 ms a number and scoring meets the same few numbers over and over."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_to_words handles 0..999999, got {n}")
    words = num2words(n, lang="en").replace("-", " ").replace(",", "")
    return " ".join(w for w in words.split() if w != "and")


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


def bootstrap_ci(samples: Sequence[float] | tuple[Sequence[float], ...],
                 statistic: Callable[..., np.ndarray] = np.mean, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(statistic, low, high): BCa bootstrap confidence interval over items (`scipy.stats.bootstrap`).

    `samples` is one 1-D sequence of per-item values, or a tuple of equal-length ones resampled together
    (paired: e.g. numerators and denominators of a ratio). `statistic(*samples, axis=-1)` must be
    vectorised like `np.mean`. BCa corrects the percentile interval for bias and skew, which matters for
    rates near 0 or 1. One item, or items that all give the same statistic, have no spread: the interval
    is the value itself. Where BCa is undefined although resamples vary, the percentile interval of the
    same resamples is returned."""
    from scipy.stats import DegenerateDataWarning, bootstrap  # ~1 s to import: only when an interval is asked for

    arrays = tuple(np.asarray(s, dtype=np.float64) for s in (samples if isinstance(samples, tuple) else (samples,)))
    if any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise ValueError(f"need non-empty 1-D sequences of values, got shapes {[a.shape for a in arrays]}")
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"paired samples differ in length: {[a.size for a in arrays]}")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("values contain NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    value = float(statistic(*arrays, axis=-1))
    if arrays[0].size == 1 or all(np.all(a == a[0]) for a in arrays):
        return value, value, value
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(arrays, statistic, n_resamples=n_resamples, vectorized=True, paired=True,
                        confidence_level=confidence, method="BCa", rng=np.random.default_rng(seed))
    low, high = res.confidence_interval
    if np.isfinite(low) and np.isfinite(high):
        return value, float(low), float(high)
    dist = res.bootstrap_distribution
    if np.ptp(dist) == 0:
        return value, value, value
    alpha = (1 - confidence) / 2
    return value, float(np.quantile(dist, alpha)), float(np.quantile(dist, 1 - alpha))
