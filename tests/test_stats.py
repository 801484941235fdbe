"""bench/records/stats.py and significance.py against scipy and closed forms worked by hand:
intervals, the paired t-test, exact McNemar, Holm, rank ranges, and the eps AUC."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from bench.errors import RecordError
from bench.records import Record
from bench.records.measures import eps_auc
from bench.records.schema import EpsPoint
from bench.records.significance import (RankRange, compare, rank_ranges, separation,
                                        shared_ranges, spread, table_ranges)
from bench.records.stats import (binomial_se, holm, mcnemar_exact, paired_t, t_interval,
                                 wilson)
from support import correct, evidence_record, model_record


# -- closed forms and scipy ----------------------------------------------------------------------
def test_t_interval_is_mean_plus_minus_t_times_the_standard_error():
    v = [11.6, 7.6, 28.0]
    iv = t_interval(v)
    mean, sd = sum(v) / 3, math.sqrt(sum((x - sum(v) / 3) ** 2 for x in v) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2}, from a printed table
    assert iv.mean == pytest.approx(mean) and iv.half == pytest.approx(half, rel=1e-9)
    lo, hi = sps.t.interval(0.95, 2, loc=mean, scale=sps.sem(v))
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi))


def test_one_seed_has_no_interval():
    iv = t_interval([84.6])
    assert iv.mean == 84.6 and iv.lo is None and iv.hi is None and iv.half is None


def test_paired_t_matches_scipy_and_the_differences_by_hand():
    a, b = [84.6, 85.1, 84.0, 83.2], [15.7, 20.3, 9.8, 12.0]
    test = paired_t(a, b)
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    t = mean / (sd / 2)
    assert test.p == pytest.approx(2 * sps.t.sf(abs(t), 3))
    assert test.p == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert test.diff.mean == pytest.approx(mean)
    assert test.diff.half == pytest.approx(sps.t.ppf(0.975, 3) * sd / 2)


def test_paired_t_edge_cases():
    assert paired_t([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p == 1.0  # identical: no evidence at all
    assert paired_t([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).p is None  # constant shift: s = 0
    assert paired_t([2.0], [1.0]).p is None  # one pair: no test


def test_mcnemar_is_a_binomial_test_of_the_discordant_pairs():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1], dtype=bool)
    m = mcnemar_exact(a, b)
    assert (m.a_only, m.b_only) == (5, 1)
    # two-sided exact: P(X <= 1 or X >= 5), X ~ Binomial(6, 1/2) = (1 + 6 + 6 + 1) / 64
    assert m.p == pytest.approx(14 / 64)
    assert m.p == pytest.approx(sps.binomtest(5, 6, 0.5).pvalue)
    assert mcnemar_exact(a, a).p == 1.0


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, None]
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 4*0.005, 3*0.01, 2*0.03, 1*0.04, made monotone
    adjusted = holm(p)
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and adjusted[4] is None
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == pytest.approx([0.2])  # one test: no correction


def test_within_seed_sampling_error():
    lo, hi = wilson(846, 1000)
    p, z, n = 0.846, sps.norm.ppf(0.975), 1000
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert binomial_se(846, 1000) == pytest.approx(math.sqrt(0.846 * 0.154 / 1000))


def test_eps_auc_is_the_trapezoid_from_clean_to_the_last_eps():
    curve = [EpsPoint(eps="0.1", acc=40.0), EpsPoint(eps="0.05", acc=80.0),
             EpsPoint(eps="0.2", acc=0.0)]
    # (0, 90) (0.05, 80) (0.1, 40) (0.2, 0): areas 4.25 + 3.0 + 2.0 = 9.25, over 0.2
    assert eps_auc(90.0, curve) == pytest.approx(46.25)
    assert eps_auc(90.0, [EpsPoint(eps="8/255", acc=90.0)]) == pytest.approx(90.0)
    assert eps_auc(90.0, None) is None and eps_auc(90.0, []) is None


# -- rank ranges ---------------------------------------------------------------------------------
def _seeds(*values: float) -> dict[int, float]:
    return dict(enumerate(values))


def test_rank_ranges_on_a_hand_made_example():
    values = {
        "a": _seeds(90.0, 91.0, 89.5, 90.5),  # clearly first
        "b": _seeds(80.0, 82.0, 79.0, 81.5),  # b and c: too close to tell apart
        "c": _seeds(81.0, 79.5, 80.5, 80.0),
        "d": _seeds(5.0, 95.0, 10.0, 90.0),  # so noisy that nothing separates it
        "e": _seeds(20.0, 21.0, 19.0, 20.5),  # clearly below a, b, c
    }
    sep = {(x, y): separation(values[x], values[y]) for x in values for y in values if x != y}
    assert sep[("a", "b")] == sep[("a", "c")] == sep[("a", "e")] == 1
    assert sep[("b", "c")] == 0 and all(sep[("d", o)] == 0 for o in "abce")
    assert sep[("b", "e")] == sep[("c", "e")] == 1
    ranges = rank_ranges(values)
    # a: nobody better (best 1), beats b, c, e (worst 5 - 3 = 2); b, c: a better, beat e;
    # d: separated from nobody; e: a, b, c better, beats nobody
    assert ranges == {"a": RankRange(1, 2), "b": RankRange(2, 4), "c": RankRange(2, 4),
                      "d": RankRange(1, 5), "e": RankRange(4, 5)}
    assert str(ranges["b"]) == "2-4" and str(RankRange(1, 1)) == "1"
    assert shared_ranges(ranges) == [(RankRange(2, 4), ["b", "c"])]


def test_lower_is_better_flips_the_ranges():
    values = {"fast": _seeds(1.0, 1.1, 0.9), "slow": _seeds(5.0, 5.5, 4.8)}
    assert rank_ranges(values, higher_is_better=False) == {"fast": RankRange(1, 1),
                                                           "slow": RankRange(2, 2)}


def test_an_untestable_method_widens_the_others_and_gets_no_range():
    values = {"a": _seeds(90.0, 91.0, 89.0), "b": _seeds(10.0, 12.0, 9.0),
              "old": _seeds(50.0, 50.5, 49.0)}
    ranges = rank_ranges(values, testable={"a", "b"})
    assert ranges == {"a": RankRange(1, 2), "b": RankRange(2, 3)}


# -- methods identical by construction, and far apart ----------------------------------------------
def _pair(rng, gap: float, seeds=range(3)) -> tuple[list[Record], list[Record]]:
    a, b = [], []
    for s in seeds:
        acc = {"clean": 95.0, "fgsm": 70.0 + rng.normal(0, 2), "pgd": 60.0 + rng.normal(0, 3),
               "noise": 88.0}
        a.append(Record.model_validate(model_record("a", s, acc, rng)))
        worse = {k: v - gap for k, v in acc.items()}
        worse["pgd"] += rng.normal(0, 1.5)
        b.append(Record.model_validate(model_record("b", s, worse, rng)))
    return a, b


def test_identical_bits_tie_with_p_1():
    rng = np.random.default_rng(1)
    a, _ = _pair(rng, 0.0)
    twin = [Record.model_validate({**r.model_dump(mode="json"), "method": "twin"}) for r in a]
    for c in compare(a, twin):
        assert c.test.p == 1.0 and c.p_holm == 1.0 and c.winner is None
        assert c.verdict("a", "twin") == "no significant difference"
        assert c.test.diff.mean == 0.0
        assert all(m.p == 1.0 and m.a_only == m.b_only == 0 for _, m in c.mcnemar)
    ranges = table_ranges(a + twin, "pgd")
    assert ranges == {"a": RankRange(1, 2), "twin": RankRange(1, 2)}


def test_a_large_consistent_gap_is_separated():
    a, b = _pair(np.random.default_rng(2), 40.0)
    by_key = {c.key: c for c in compare(a, b)}
    assert set(by_key) == {"clean", "corruptions", "fgsm", "pgd", "robust"}
    pgd = by_key["pgd"]
    assert pgd.verdict("a", "b") == "a > b" and pgd.p_holm < 0.05
    assert pgd.test.diff.lo > 20.0  # the whole interval is far from 0 (the gap is 40)
    assert [s for s, _ in pgd.mcnemar] == [0, 1, 2]
    assert all(m.p < 1e-10 and m.a_only > m.b_only for _, m in pgd.mcnemar)
    # Holm over the metrics shown: each adjusted p is at least its raw p
    assert all(c.p_holm >= c.test.p for c in by_key.values() if c.test.p is not None)
    assert table_ranges(a + b, "pgd") == {"a": RankRange(1, 1), "b": RankRange(2, 2)}
    reverse = {c.key: c for c in compare(b, a, ["pgd"])}
    assert reverse["pgd"].verdict("b", "a") == "b < a"


def test_spread_compares_seeds_with_the_binomial_error():
    a, _ = _pair(np.random.default_rng(3), 0.0)
    s = spread(a, "pgd")
    values = [r.metrics.pgd_acc for r in a]
    assert s.seed_sd == pytest.approx(np.std(values, ddof=1))
    assert s.sampling_se == pytest.approx(np.mean([100 * math.sqrt(v / 100 * (1 - v / 100) / 1000)
                                                   for v in values]))


def test_compare_refuses_records_without_evidence_and_too_few_seeds():
    rng = np.random.default_rng(4)
    a, b = _pair(rng, 5.0)
    old = [r.model_copy(update={"metrics": r.metrics.model_copy(update={"evidence": None})})
           for r in b]
    with pytest.raises(RecordError, match="b seed 0, b seed 1, b seed 2: no per-example evidence"):
        compare(a, old)
    with pytest.raises(RecordError, match="share 1 seed"):
        compare(a[:1], b)
    with pytest.raises(RecordError, match="autoattack: not measured"):
        compare(a, b, ["autoattack"])


def test_corruption_bits_pool_every_corruption_and_severity():
    rng = np.random.default_rng(5)
    n = 200
    masks = [correct(n, k, rng) for k in (150, 100, 50)]
    d = evidence_record("m", 0, correct(n, 190, rng), correct(n, 120, rng), correct(n, 80, rng),
                        {"gaussian_noise": masks[:2], "fog": masks[2:]})
    from bench.records.measures import BY_KEY
    bits = BY_KEY["corruptions"].bits(Record.model_validate(d))
    assert len(bits) == 3 * n and 100 * bits.mean() == pytest.approx(d["metrics"]["corruptions_acc"])
