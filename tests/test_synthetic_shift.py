"""The synthetic moment-shift experiment (Section 2.1, Table 1, Figure 2): data, labels, batched models, the tool."""
import csv
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from featquant_mmdet.analysis.synthetic_shift import (PAPER_TABLE1, TABLE1_ROWS, BatchedBatchNorm, BatchedLinear,
                                                      BatchedShiftNet, RowSpec, TrainConfig,
                                                      generalized_normal_moments, make_shift_data, run_table1,
                                                      sample_standardized_generalized_normal, sign_labels)
from featquant_mmdet.ops.quantize import scaled_floor, signed_power


def _gn_reference(kappa):
    """Hosking's generalized normal (eq. 8-9) through scipy: for kappa != 0 it is a shifted, mirrored lognormal.

    x = (1 - exp(-kappa y)) / kappa; with L = exp(-kappa y) / |kappa| ~ lognorm(s=|kappa|, scale=1/|kappa|):
    kappa > 0: x = 1/kappa - L;  kappa < 0: x = L - 1/|kappa|.
    """
    a = abs(kappa)
    lognorm = stats.lognorm(s=a, scale=1 / a)
    mean, var, skew = (float(v) for v in lognorm.stats(moments='mvs'))
    if kappa > 0:
        return dict(mean=1 / kappa - mean, var=var, skew=-skew,
                    cdf=lambda x: lognorm.sf(1 / kappa - x))
    return dict(mean=mean - 1 / a, var=var, skew=skew, cdf=lambda x: lognorm.cdf(x + 1 / a))


@pytest.mark.parametrize('kappa', [-0.9, -0.4, 0.3, 0.8])
def test_moments_match_scipy_reference(kappa):
    mean, var = generalized_normal_moments(torch.tensor(kappa, dtype=torch.float64))
    ref = _gn_reference(kappa)
    assert mean.item() == pytest.approx(ref['mean'], rel=1e-9)
    assert var.item() == pytest.approx(ref['var'], rel=1e-9)


def test_moments_continuous_at_kappa_zero():
    mean, var = generalized_normal_moments(torch.tensor([0.0, 1e-8, -1e-8]))
    torch.testing.assert_close(mean, torch.zeros(3, dtype=torch.float64), atol=1e-7, rtol=0)
    torch.testing.assert_close(var, torch.ones(3, dtype=torch.float64), atol=1e-7, rtol=0)


def test_samples_follow_eq_8_and_are_standardised():
    """Standardised samples: mean 0, variance 1, skewness of the generalized normal (sign opposite to kappa),
    and the whole distribution is the one of eq. 8-9 (Kolmogorov-Smirnov against scipy's lognormal form)."""
    kappas = torch.tensor([-0.8, -0.3, 0.0, 0.3, 0.8], dtype=torch.float64)
    x = sample_standardized_generalized_normal(kappas, 200_000, torch.Generator().manual_seed(0),
                                               dtype=torch.float64).numpy()
    assert x.shape == (200_000, 5)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.015)
    np.testing.assert_allclose(x.var(0), 1.0, atol=0.03)
    skews = stats.skew(x, axis=0)
    assert np.all(np.diff(skews) < 0), f'skewness must fall as kappa grows: {skews}'
    assert abs(skews[2]) < 0.03  # kappa = 0: the normal
    for j, kappa in enumerate(kappas.tolist()):
        if kappa == 0:
            assert stats.kstest(x[:, j], 'norm').pvalue > 1e-3
            continue
        ref = _gn_reference(kappa)
        assert np.sign(skews[j]) == -np.sign(kappa)
        assert skews[j] == pytest.approx(ref['skew'], rel=0.15)
        sd = math.sqrt(ref['var'])
        raw = ref['mean'] + sd * x[:, j]  # undo the standardisation with scipy's moments
        assert stats.kstest(raw, ref['cdf']).pvalue > 1e-3


def test_sign_labels_match_the_definition():
    x = torch.tensor([[1.0, -1.0, 0.0, 2.0, -3.0],
                      [-0.5, 0.1, -2.0, 0.0, 4.0]])
    # sum_n 2^n 1(x_n >= 0) over the first N features (0 counts as >= 0)
    assert sign_labels(x, 1).tolist() == [1, 0]
    assert sign_labels(x, 3).tolist() == [1 + 4, 2]
    assert sign_labels(x, 4).tolist() == [1 + 4 + 8, 2 + 8]
    rng = np.random.default_rng(0)
    r = rng.standard_normal((500, 16))
    expected = [sum(2 ** n for n in range(8) if row[n] >= 0) for row in r]
    got = sign_labels(torch.from_numpy(r), 8)
    assert got.tolist() == expected
    assert set(sign_labels(torch.from_numpy(rng.standard_normal((4000, 8))), 3).tolist()) == set(range(8))


def test_sign_labels_reject_bad_n():
    with pytest.raises(ValueError, match=r'num_determinant must be in \[1, 4\]'):
        sign_labels(torch.zeros(3, 4), 5)
    with pytest.raises(ValueError, match='num_determinant'):
        sign_labels(torch.zeros(3, 4), 0)


def test_shift_data_same_and_new_kappas():
    data = make_shift_data(runs=2, num_train=3000, num_test=3000, num_features=6, seed=1)
    assert data.train.shape == (2, 3000, 6) and data.test_shifted.shape == (2, 3000, 6)
    assert data.kappa_train.abs().max() <= 1 and not torch.equal(data.kappa_train, data.kappa_test)
    same = make_shift_data(runs=2, num_train=3000, num_test=3000, num_features=6, seed=1)
    assert torch.equal(same.train, data.train)  # reproducible from the seed
    # the test set without divergence has the training skewness; the shifted one the new kappas' skewness
    skew = lambda t: torch.from_numpy(stats.skew(t.numpy(), axis=1))  # noqa: E731
    ks_same = stats.ks_2samp(data.train[0, :, 0].numpy(), data.test_same[0, :, 0].numpy()).pvalue
    assert ks_same > 1e-3
    corr_same = np.corrcoef(skew(data.train).ravel(), skew(data.test_same).ravel())[0, 1]
    assert corr_same > 0.9
    # skewness of each feature follows -kappa
    assert np.corrcoef(skew(data.test_shifted).ravel(), -data.kappa_test.ravel())[0, 1] > 0.9


def test_make_shift_data_rejects_bad_sizes():
    with pytest.raises(ValueError, match='num_train must be >= 1'):
        make_shift_data(runs=1, num_train=0, num_test=5, num_features=3)


def test_batched_layers_equal_independent_torch_layers():
    torch.manual_seed(0)
    lin = BatchedLinear(3, 5, 4)
    x = torch.randn(3, 7, 5)
    for g in range(3):
        ref = nn.Linear(5, 4)
        with torch.no_grad():
            ref.weight.copy_(lin.weight[g].T)
            ref.bias.copy_(lin.bias[g, 0])
        torch.testing.assert_close(lin(x)[g], ref(x[g]))
    bn = BatchedBatchNorm(3, 5, affine=False)
    refs = [nn.BatchNorm1d(5, affine=False) for _ in range(3)]
    y = bn(x)
    for g in range(3):
        torch.testing.assert_close(y[g], refs[g](x[g]))
        torch.testing.assert_close(bn.running_mean[g, 0], refs[g].running_mean)
        torch.testing.assert_close(bn.running_var[g, 0], refs[g].running_var)
    bn.eval()
    for r in refs:
        r.eval()
    for g in range(3):
        torch.testing.assert_close(bn(x)[g], refs[g](x[g]))


def test_input_transforms_are_the_project_ops():
    x = torch.randn(2, 9, 6)
    floor_net = BatchedShiftNet(2, 6, 4, TABLE1_ROWS['Floor'], floor_beta=2.0)
    torch.testing.assert_close(floor_net.transform_input(x), scaled_floor(x, 2.0))
    power_net = BatchedShiftNet(2, 6, 4, TABLE1_ROWS['Power'])
    with torch.no_grad():
        power_net.power_alpha.uniform_(-0.9, 0.5)
    torch.testing.assert_close(power_net.transform_input(x), signed_power(x, power_net.power_alpha))
    # the exponents are learned: the loss reaches them
    power_net(x).sum().backward()
    assert power_net.power_alpha.grad is not None and power_net.power_alpha.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='unknown input transform'):
        BatchedShiftNet(2, 6, 4, RowSpec(input_transform='relu6'))


def test_batched_training_equals_training_each_run_alone(monkeypatch):
    """Vectorising the runs changes nothing: run r of a batch of 2 == a batch of 1 with run r's data and init."""
    import featquant_mmdet.analysis.synthetic_shift as shift
    data = make_shift_data(runs=2, num_train=300, num_test=200, num_features=8, seed=3)
    cfg = TrainConfig(epochs=2, batch_size=50, seed=0)
    both = shift.train_row(TABLE1_ROWS['BN + affine'], data, 2, cfg)
    # rebuild run 1 alone with the initial weights it had in the batched model
    torch.manual_seed(cfg.seed)
    init = BatchedShiftNet(2, 8, 4, TABLE1_ROWS['BN + affine'])
    alone_data = shift.ShiftData(*(t[1:] for t in (data.train, data.test_same, data.test_shifted,
                                                    data.kappa_train, data.kappa_test)))
    original = shift.BatchedShiftNet

    def one_model(num_models, *args, **kwargs):  # the batched init, sliced to run 1
        net = original(num_models, *args, **kwargs)
        with torch.no_grad():
            for p_one, p_init in zip(net.parameters(), init.parameters()):
                p_one.copy_(p_init[1:])
        return net

    monkeypatch.setattr(shift, 'BatchedShiftNet', one_model)
    alone = shift.train_row(TABLE1_ROWS['BN + affine'], alone_data, 2, cfg)
    assert alone['accuracy'].item() == pytest.approx(both['accuracy'][1].item(), abs=1e-6)
    assert alone['train_accuracy'].item() == pytest.approx(both['train_accuracy'][1].item(), abs=1e-6)


def test_reduced_table_learns_and_power_learns_compressing_exponents():
    """A reduced Table 1: the networks learn (far above chance), and the power row learns a compressing exponent
    (alpha < 0) for the label-determining feature, more compressing than for the noise features."""
    rows = ['Base w/o divergence', 'Power']
    result = run_table1(runs=2, num_samples=1000, num_features=8, determinant=(1, 2), rows=rows,
                        cfg=TrainConfig(epochs=6, batch_size=50))
    assert list(result.accuracy) == rows
    for row in rows:
        acc = result.accuracy[row]
        assert acc.shape == (2, 2)
        assert (acc[:, 0] > 80).all(), (row, acc)  # N=1: chance is 50 %
        assert (acc[:, 1] > 50).all(), (row, acc)  # N=2: chance is 25 %
        assert (result.train_accuracy[row] > 50).all()
    assert result.power_alpha.shape == (2, 2, 8)
    assert (result.power_alpha[..., 0] < 0).all()
    assert result.power_alpha[..., 0].mean() < result.power_alpha[..., 2:].mean()


def test_run_table1_rejects_unknown_rows_and_counts():
    with pytest.raises(ValueError, match='unknown rows'):
        run_table1(runs=1, num_samples=10, num_features=4, rows=['Relu6'])
    with pytest.raises(ValueError, match=r'determinant feature counts must be in \[1, 4\]'):
        run_table1(runs=1, num_samples=10, num_features=4, determinant=(8, ))


def test_paper_table_has_every_row():
    assert list(PAPER_TABLE1) == list(TABLE1_ROWS)
    assert PAPER_TABLE1['Power'] == (99.0, 98.4, 97.5, 77.6)


def test_tool_writes_table_csv_and_figure(tmp_path, capsys, load_tool):
    tool = load_tool('analysis/synthetic_shift')
    out = tmp_path / 'out'
    tool.main(['--runs', '2', '--samples', '300', '--features', '8', '--determinant', '1', '2', '--epochs', '1',
               '--rows', 'Base', 'Tanh', 'Power', '--out-dir', str(out)])
    printed = capsys.readouterr().out
    assert '| Power |' in printed and '| 99.0 |' in printed  # our cell next to the paper's
    with open(out / 'table1.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['model'], r['N']) for r in rows] == [('Base', '1'), ('Base', '2'), ('Tanh', '1'), ('Tanh', '2'),
                                                    ('Power', '1'), ('Power', '2')]
    assert rows[4]['paper_acc'] == '99.0' and 0 <= float(rows[4]['test_acc_mean']) <= 100
    assert set(rows[0]) >= {'run0', 'run1'}
    import matplotlib.image as mpimg
    img = mpimg.imread(out / 'figure2_distributions.png')
    assert img.shape[0] > 100 and img.shape[1] > 500
    assert (out / 'table1.md').read_text().count('\n') >= 4
    with pytest.raises(SystemExit):
        tool.main(['--runs', '0'])
