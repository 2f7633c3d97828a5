"""Normalisation, WER/CER on hand-computed cases, MCD, bootstrap."""
import numpy as np
import pytest

from ttt.eval.metrics import bootstrap_ci, cer, mcd_dtw, normalize, number_to_words, wer


@pytest.mark.parametrize("raw,expected", [
    ("What is 7 plus 4?", "what is seven plus four"),
    ("It's 21, or twenty-one.", "it's twenty one or twenty one"),
    ("1,000 Colours!", "one thousand colors"),
    ("  The  capital\tof France. ", "the capital of france"),
    ("105", "one hundred five"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_number_words():
    assert number_to_words(0) == "zero" and number_to_words(40) == "forty"
    assert number_to_words(999_999) == "nine hundred ninety nine thousand nine hundred ninety nine"
    assert number_to_words(1_100) == "one thousand one hundred"
    with pytest.raises(ValueError, match="0..999999"):
        number_to_words(-1)
    with pytest.raises(ValueError, match="0..999999"):
        number_to_words(1_000_000)


_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def test_number_words_match_the_closed_world():
    """The corpus and the shipped model spell numbers as `NUMBER_WORDS` (0..20) does, and compose
    larger ones without "and" or hyphens; scoring must spell digits exactly so (0..199 checked)."""
    from ttt.corpus.world import NUMBER_WORDS

    below_100 = list(NUMBER_WORDS[:20]) + [t + ("" if u == 0 else " " + NUMBER_WORDS[u])
                                           for t in _TENS for u in range(10)]
    expected = below_100 + ["one hundred"] + [f"one hundred {w}" for w in below_100[1:]]
    assert [number_to_words(n) for n in range(200)] == expected
    assert [number_to_words(n) for n in range(len(NUMBER_WORDS))] == list(NUMBER_WORDS)


def test_wer_hand_computed():
    assert wer("seven plus four is eleven", "7 + 4 is 11.") == pytest.approx(1 / 5)  # "plus" deleted
    # corpus WER = total edits / total words: (1 sub + 1 del) / (4 + 2)
    assert wer(["a b c d", "e f"], ["a x c d", "e"]) == pytest.approx(2 / 6)
    assert wer(["one two"], ["one two three"]) == pytest.approx(1 / 2)
    assert wer("hello", "hello") == 0.0


def test_cer_hand_computed():
    assert cer("abcd", "abxd") == pytest.approx(1 / 4)
    assert cer("ab cd", "ab") == pytest.approx(3 / 5)


def test_wer_errors():
    with pytest.raises(ValueError, match="references but"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalisation"):
        wer(["?!"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        wer([], [])


def _tone(freqs, seconds=0.6, rate=16000):
    """Harmonics plus a little noise (so no mel band sits at the log floor, as in real audio)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(len(freqs)).normal(0, 1e-3, t.size)
    return (0.2 * sum(np.sin(2 * np.pi * f * t) for f in freqs) + noise).astype(np.float32)


def test_mcd():
    a, b = _tone([220, 440]), _tone([300, 1200, 2500])
    assert mcd_dtw(a, a, 16000) == 0.0
    assert mcd_dtw(a, 0.5 * a, 16000) < 1e-3  # gain-invariant: c0 excluded
    assert mcd_dtw(a, b, 16000) > 1.0
    # DTW absorbs a pure time stretch better than a spectral change
    stretched = np.repeat(a, 2)[: int(1.5 * len(a))]
    assert mcd_dtw(a, stretched, 16000) < mcd_dtw(a, b, 16000)


def test_mcd_bad_input():
    with pytest.raises(ValueError, match="empty"):
        mcd_dtw(np.zeros(0, np.float32), _tone([220]), 16000)
    with pytest.raises(ValueError, match="NaN"):
        mcd_dtw(np.full(1000, np.nan, np.float32), _tone([220]), 16000)


def test_bootstrap_ci():
    mean, low, high = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], seed=0)
    assert mean == 3.0 and 1.0 <= low < 3.0 < high <= 5.0
    assert bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], seed=0) == (mean, low, high)  # seeded: reproducible
    assert bootstrap_ci([2.0] * 10) == (2.0, 2.0, 2.0)
    assert bootstrap_ci([7.0]) == (7.0, 7.0, 7.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(([1.0, 2.0], [1.0]), lambda a, b, axis=-1: a.sum(axis) / b.sum(axis))


def test_bootstrap_ci_is_bca_and_covers_a_skewed_mean():
    """BCa on a skewed sample: the interval is asymmetric around the mean (longer on the long tail),
    unlike a normal-theory interval, and close to a large-sample percentile interval."""
    rng = np.random.default_rng(1)
    x = rng.exponential(1.0, 60)
    mean, low, high = bootstrap_ci(x, n_resamples=2000, seed=0)
    assert low < mean < high and (high - mean) > (mean - low)
    assert 0.6 < low < mean and mean < high < 1.6


def test_bootstrap_ci_ratio_of_paired_sums():
    num, den = np.array([0.0, 1.0, 2.0, 0.0, 3.0]), np.array([5.0, 4.0, 6.0, 3.0, 7.0])

    def ratio(n, d, axis=-1):
        return n.sum(axis=axis) / d.sum(axis=axis)

    value, low, high = bootstrap_ci((num, den), ratio, seed=0)
    assert value == pytest.approx(6 / 25) and 0.0 <= low < value < high <= 0.5
    # all numerators zero: every resample gives 0, so does the interval (BCa itself is undefined there)
    assert bootstrap_ci((np.zeros(5), den), ratio) == (0.0, 0.0, 0.0)
