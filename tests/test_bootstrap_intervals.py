"""Interval methods of ``stats.bootstrap.Estimate``: percentile and bias-corrected (bc) intervals, their p-values
(``p <= 1 - level`` exactly when the interval excludes 0), the bias, bad input."""
import numpy as np
import pytest

from featquant_mmdet.stats import bootstrap as B
from featquant_mmdet.stats.checks import StatsInputError

LEVELS = (0.8, 0.9, 0.95, 0.99)


def test_percentile_interval_is_the_davison_hinkley_order_statistic():
    samples = np.random.default_rng(0).permutation(np.arange(999, dtype=float))  # 0 .. 998
    est = B.Estimate(499.0, samples, 0.95, 'percentile')
    assert est.interval == (24.0, 974.0)  # the 25th smallest and the 25th largest of 999: (999 + 1) * 0.025 = 25
    assert B.Estimate(499.0, samples, 0.9, 'percentile').interval == (48.0, 950.0)  # 1 - 0.9 < 0.1 in floats
    # too few resamples for the level: the end is unbounded, not the minimum
    assert B.Estimate(0.5, np.linspace(0, 1, 30), 0.95, 'percentile').interval == (-np.inf, np.inf)


@pytest.mark.parametrize('method', B.METHODS)
def test_p_value_is_below_one_minus_level_exactly_when_the_interval_excludes_zero(method):
    rng = np.random.default_rng(1)
    checked = {True: 0, False: 0}
    for trial in range(400):
        b = int(rng.choice([19, 39, 99, 199, 999, 1000]))
        centre = rng.normal(0, 2.5)
        samples = rng.normal(centre, 1.0, b)
        if trial % 3 == 0:  # ties at 0 and at the point (accuracies are discrete)
            samples = np.round(samples)
        point = centre + rng.normal(0, 0.8)
        if trial % 5 == 0:
            point = float(np.round(point))
        for level in LEVELS:
            est = B.Estimate(point, samples, level, method)
            p = est.p_value
            assert (2 / (b + 1) - 1e-15 if method == 'percentile' else 0) < p <= 1
            assert (p <= 1 - level) == est.excludes_zero, (trial, b, level, p, est.interval)
            checked[est.excludes_zero] += 1
    assert min(checked.values()) > 100  # both outcomes were exercised


def test_percentile_p_value_at_every_count_near_the_boundary():
    """The (B + 1) rule in floating point: every count of samples <= 0 around the boundary, common B and levels."""
    for b in (39, 99, 199, 999, 1000, 1999):
        for level in LEVELS:
            for k in range(0, min(b, int((b + 1) * (1 - level)) + 3)):
                samples = np.concatenate([-1 - np.arange(k), 1 + np.arange(b - k)]).astype(float)
                est = B.Estimate(0.5, samples, level, 'percentile')
                assert est.p_value == pytest.approx(min(1, 2 * (k + 1) / (b + 1)))
                assert (est.p_value <= 1 - level) == est.excludes_zero, (b, level, k)


def test_bc_equals_percentile_without_bias_and_moves_against_it():
    rng = np.random.default_rng(2)
    samples = rng.normal(0, 1, 1999)
    median = float(np.median(samples))
    assert B.Estimate(median, samples).z0 == 0.0
    assert B.Estimate(median, samples, 0.95, 'bc').interval == B.Estimate(median, samples, 0.95,
                                                                          'percentile').interval
    # samples biased up by 0.5 sd relative to the point: the percentile interval sits above the point's side,
    # the bc interval moves down by about twice the bias (normal case: [point - bias -/+ 1.96 sd])
    point = -0.5
    bc, pc = B.Estimate(point, samples, 0.95, 'bc'), B.Estimate(point, samples, 0.95, 'percentile')
    assert bc.bias == pytest.approx(samples.mean() + 0.5)
    assert bc.z0 == pytest.approx(-0.5, abs=0.05)
    assert bc.low == pytest.approx(point - bc.bias - 1.96, abs=0.15)
    assert bc.high == pytest.approx(point - bc.bias + 1.96, abs=0.15)
    assert pc.low == pytest.approx(-1.96, abs=0.15) and pc.high == pytest.approx(1.96, abs=0.15)


def test_model_against_itself_and_constant_samples():
    zeros = B.Estimate(0.0, np.zeros(500))
    assert zeros.interval == (0.0, 0.0) and not zeros.excludes_zero and zeros.p_value == 1.0
    assert zeros.bias == 0.0
    d = B.Estimate(1.0, np.ones(500))  # every resample +1: excluded, p at its floor
    assert d.excludes_zero and d.p_value == pytest.approx(2 / 501)


def test_undefined_and_infinite_samples():
    est = B.Estimate(0.5, np.array([0.1, np.nan, 0.3] * 100))
    assert np.isnan(est.interval).all() and np.isnan(est.p_value)
    inf = B.Estimate(1.2, np.concatenate([np.full(900, 1.1), np.full(100, np.inf)]), 0.95, 'percentile')
    assert inf.interval == (1.1, np.inf) and inf.excludes_zero


def test_method_is_threaded_through_resamples_summaries_and_differences():
    from featquant_mmdet.stats.correctness import Correctness
    hits = np.random.default_rng(3).random((2, 60)) < [[0.6], [0.8]]
    cells = {k: Correctness({1: h}, [str(i) for i in range(60)]) for k, h in zip(('clean', 'jpeg@1'), hits)}
    for method in B.METHODS:
        r = B.Resamples.draw(60, 200, seed=0, method=method)
        s = B.bootstrap_summary(cells, r)
        assert {e.method for e in s.columns().values()} == {method}
        assert {e.method for e in B.paired_differences(s, s).values()} == {method}
        assert s.P.as_dict()['method'] == method and 0 < s.P.as_dict()['p_value'] <= 1
    assert B.Resamples.draw(60, 10).method == B.DEFAULT_METHOD == 'percentile+point'


def test_unknown_method_is_refused():
    with pytest.raises(StatsInputError, match=r"'bca' not supported; accepted: percentile\+point, percentile, "
                                              r"basic\+point, basic, bc"):
        B.Resamples.draw(10, 10, method='bca')
    with pytest.raises(StatsInputError, match='accepted: percentile.point, percentile, basic.point, basic, bc'):
        B.Estimate(0.0, np.zeros(3), 0.95, 'student')


def test_basic_interval_is_the_reflected_percentile_and_point_joins_it():
    rng = np.random.default_rng(4)
    samples = rng.gamma(4.0, 0.5, 999) + 2.5  # skewed, biased up by more than its spread
    point = 1.0
    pc = B.Estimate(point, samples, 0.95, 'percentile')
    basic = B.Estimate(point, samples, 0.95, 'basic')
    assert basic.interval == (2 * point - pc.high, 2 * point - pc.low)
    assert basic.high < point  # the bias correction moved the interval past its own point ...
    joined = B.Estimate(point, samples, 0.95, 'basic+point')
    assert joined.interval == (basic.low, point)  # ... basic+point extends it to the point, no further
    # p-values: basic excludes 0 on the negative side; the joined interval cannot (its point is positive)
    assert basic.high < 0 and basic.p_value <= 0.05 and joined.p_value == 1.0
    # a point inside the basic interval changes nothing
    inside = B.Estimate(float(np.median(samples)), samples, 0.9, 'basic+point')
    assert inside.interval == B.Estimate(inside.point, samples, 0.9, 'basic').interval
    assert inside.p_value == B.Estimate(inside.point, samples, 0.9, 'basic').p_value


@pytest.mark.parametrize('argv, message', [(['--methods', 'bca'], "unknown ['bca']"),
                                           (['--sizes', '80', '5000', '--draws', '1', '2', '3'], '--draws: one value'),
                                           (['--level', '1.5'], '--level must be in (0, 1)')])
def test_coverage_benchmark_refuses_bad_options(argv, message, capsys):
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'benchmarks', 'bench_coverage.py')
    spec = importlib.util.spec_from_file_location('bench_coverage', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit) as err:
        bench.main(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err
