"""Paired bootstrap over items pooled over seeds, and Holm's correction, on data with known effects."""
import numpy as np
import pytest

from ttt.eval.paired import Gain, Values, decide, holm, paired_gain, resample_weights, verdict


def bernoulli(p: float | np.ndarray, seeds: int, items: int, rng) -> np.ndarray:
    return (rng.random((seeds, items)) < p).astype(float)


def test_statistic_pools_seeds_and_aggregates_ratios_like_ttt_eval():
    acc = Values([[1, 0, 1, 1], [0, 0, 1, 1]])
    assert acc.statistic() == pytest.approx((0.75 + 0.5) / 2)
    wer = Values(num=[[1, 0, 3], [0, 0, 1]], den=[[2, 4, 4], [2, 4, 4]])  # corpus WER per seed: 4/10, 1/10
    assert wer.statistic() == pytest.approx(0.25)
    # resampled: item 2 twice, item 0 once
    assert wer.statistic(np.array([[1.0, 0.0, 2.0]])) == pytest.approx([(7 / 10 + 2 / 10) / 2])
    with pytest.raises(ValueError, match="differ in shape"):
        Values([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ValueError, match="denominators sum to zero"):
        Values([[0, 0]], [[0, 0]])


def test_resample_weights_draw_each_resample_with_replacement():
    w = resample_weights(50, 2000, seed=1)
    assert w.shape == (2000, 50) and np.all(w.sum(axis=1) == 50)
    assert abs(w.mean() - 1.0) < 0.01 and (w == 0).any(axis=1).all(), "some items are left out of every resample"


def test_a_real_difference_is_detected_in_the_right_direction():
    rng = np.random.default_rng(0)
    good, bad = Values(bernoulli(0.8, 3, 200, rng)), Values(bernoulli(0.6, 3, 200, rng))
    gain = paired_gain(good, bad, "higher", n_resamples=4000)
    assert gain.estimate == pytest.approx(good.statistic() - bad.statistic()) and gain.estimate > 0.1
    assert gain.p < 0.001 and gain.interval(0.95)[0] > 0
    worse = paired_gain(bad, good, "higher", n_resamples=4000)
    assert worse.estimate < 0 and worse.interval(0.95)[1] < 0
    # WER: lower is better, so fewer errors is a positive gain
    den = np.full((3, 200), 5.0)
    few, many = Values(rng.binomial(5, 0.1, (3, 200)), den), Values(rng.binomial(5, 0.2, (3, 200)), den)
    assert paired_gain(few, many, "lower", n_resamples=4000).interval(0.99)[0] > 0


def test_pairing_by_item_detects_a_small_shift_that_item_difficulty_would_hide():
    """Items differ hugely in difficulty, A is better by 0.02 on every item: paired, that is certain; an
    unpaired comparison (independent draws for A and B) could not tell."""
    rng = np.random.default_rng(1)
    difficulty = rng.random(300)
    b = Values(np.tile(difficulty, (3, 1)))
    a = Values(np.tile(difficulty + 0.02, (3, 1)))
    gain = paired_gain(a, b, "higher", n_resamples=2000)
    assert gain.p == 0.0 and gain.interval(0.999)[0] == pytest.approx(0.02)
    wa, wb = resample_weights(300, 2000, seed=2), resample_weights(300, 2000, seed=3)
    unpaired = Gain(gain.estimate, a.statistic(wa) - b.statistic(wb), 300)
    assert unpaired.p > 0.05


def test_a_null_difference_is_rejected_at_about_the_nominal_rate():
    """400 simulated studies with no true difference: the 5% test rejects in about 5% of them (expected 20,
    standard deviation 4.4; 1,000 studies of this kind rejected 4.7-5.2%)."""
    rng = np.random.default_rng(3)
    rejections = 0
    for study in range(400):
        p_item = rng.random(60)  # per-item difficulty, shared by both systems
        a, b = Values(bernoulli(p_item, 3, 60, rng)), Values(bernoulli(p_item, 3, 60, rng))
        rejections += paired_gain(a, b, "higher", n_resamples=1000, seed=study).p <= 0.05
    assert 8 <= rejections <= 34, f"{rejections} of 400 null studies rejected"


@pytest.mark.parametrize("seed", range(5))
def test_interval_excludes_zero_iff_p_le_a(seed):
    rng = np.random.default_rng(seed)
    boot = np.round(rng.normal(rng.normal(0, 1), 1, 999), 1)  # ties and zeros included
    g = Gain(0.0, boot, 10)
    for a in (0.002, 0.01, 0.05, 0.2, 2 * np.mean(boot <= 0), 2 * np.mean(boot >= 0)):
        a = min(a, 0.99)
        if a <= 0:
            continue
        low, high = g.interval(1 - a)
        assert (low > 0 or high < 0) == (g.p <= a), (a, g.p, low, high)


def test_holm_matches_the_textbook_example():
    """Four hypotheses at alpha 0.05 (Holm 1979's procedure as usually taught): p = 0.01, 0.04, 0.03, 0.005.
    Sorted 0.005 <= 0.05/4 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops the procedure, so 0.04 is
    kept although 0.04 <= 0.05/1."""
    adjusted, levels, rejected = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected.tolist() == [True, False, False, True]
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 1, 1 - 0.05 / 2, 1 - 0.05 / 4])
    assert holm([0.5])[0] == pytest.approx([0.5]) and holm([0.9, 0.8])[0] == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="p-values must be"):
        holm([0.1, 1.2])


def test_holm_agrees_with_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(0).random(25) ** 3
    rejected, adjusted, *_ = multipletests(p, alpha=0.05, method="holm")
    ours = holm(p)
    assert ours[0] == pytest.approx(adjusted) and ours[2].tolist() == rejected.tolist()


def test_decide_and_verdicts():
    rng = np.random.default_rng(4)
    base = Values(bernoulli(0.5, 3, 300, rng))
    gains = {"better": paired_gain(Values(bernoulli(0.8, 3, 300, rng)), base, "higher"),
             "worse": paired_gain(Values(bernoulli(0.2, 3, 300, rng)), base, "higher"),
             "same": paired_gain(Values(base.num.copy()), base, "higher")}
    d = decide(gains)
    assert [d[k].outcome for k in ("better", "worse", "same")] == ["better", "worse", "open"]
    assert d["same"].p == 1.0 and d["same"].low == d["same"].high == 0.0
    assert d["better"].confidence > 0.95, "Holm tests each comparison at a stricter level than 95%"
    assert verdict(["better", "better"]) == "supported"
    assert verdict(["better", "open"]) == "not resolved"
    assert verdict(["better", "worse"]) == "contradicted"
    assert verdict([]) == "not measured"


def test_cluster_resampling_keeps_the_error_rate_of_clustered_items():
    """30 questions, each asked in 10 voices that all get the same outcome: 300 items but 30 independent ones.
    Resampling items one by one rejects a true null far too often; resampling whole questions does not."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 10)
    by_item = by_cluster = 0
    for study in range(150):
        p_q = rng.random(30)
        a = Values(np.repeat((rng.random((3, 30)) < p_q).astype(float), 10, axis=1))
        b = Values(np.repeat((rng.random((3, 30)) < p_q).astype(float), 10, axis=1))
        by_item += paired_gain(a, b, "higher", n_resamples=800, seed=study).p <= 0.05
        by_cluster += paired_gain(a, b, "higher", n_resamples=800, seed=study, groups=groups).p <= 0.05
    assert by_item > 2 * by_cluster and by_cluster <= 18, (by_item, by_cluster)


def test_cluster_weights_draw_whole_clusters():
    w = resample_weights(6, 500, seed=0, groups=["a", "a", "b", "b", "b", "c"])
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 2] == w[:, 4]) and not np.all(w[:, 0] == w[:, 5])
    assert set(np.unique(w[:, 5])) <= {0, 1, 2, 3}, "3 clusters drawn 3 times in all"
    with pytest.raises(ValueError, match="3 cluster labels for 6 items"):
        resample_weights(6, 10, groups=["a", "b", "c"])
