"""Feature-distribution shift (Figure 1): statistics against numpy/scipy, JS divergence, hooks, the tool end to end."""
import csv
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon
from torch import nn

from featquant_mmdet.analysis.feature_moments import (ActivationSampler, compare_activations, histogram_pair,
                                                      image_bootstrap_js, js_divergence, moment_statistics,
                                                      resolve_layers)
from featquant_mmdet.engine.loading import load_weights_strict

IMAGE_SCALE = '(128,96)'


def test_moments_match_numpy_and_scipy():
    rng = np.random.default_rng(0)
    for values in (rng.gamma(2.0, 1.5, size=(4, 5, 6)), rng.standard_t(5, size=1000) * 3 + 7,
                   np.array([1.0, 2.0, 3.0, 10.0])):
        got = moment_statistics(torch.from_numpy(values).float() if values.size > 4 else torch.tensor(values))
        flat = values.astype(np.float32 if values.size > 4 else np.float64).astype(np.float64).ravel()
        assert got['mean'] == pytest.approx(np.mean(flat), rel=1e-12, abs=1e-12)
        assert got['variance'] == pytest.approx(np.var(flat), rel=1e-10)
        assert got['skewness'] == pytest.approx(stats.skew(flat), rel=1e-9)
        assert got['kurtosis'] == pytest.approx(stats.kurtosis(flat), rel=1e-9)
    # by hand: [1, 2, 3, 10] has mean 4, variance 12.5
    hand = moment_statistics(torch.tensor([1.0, 2.0, 3.0, 10.0]))
    # deviations -3, -2, -1, 6: m2 = 50/4, m3 = 180/4, m4 = 1394/4
    assert hand['mean'] == 4.0 and hand['variance'] == 12.5
    assert hand['skewness'] == pytest.approx(45 / 12.5 ** 1.5)
    assert hand['kurtosis'] == pytest.approx(348.5 / 12.5 ** 2 - 3)


def test_moments_of_constant_and_bad_input():
    const = moment_statistics(torch.full((10, ), 3.0))
    assert const['mean'] == 3.0 and const['variance'] == 0.0
    assert math.isnan(const['skewness']) and math.isnan(const['kurtosis'])
    with pytest.raises(ValueError, match='empty'):
        moment_statistics(torch.empty(0))
    with pytest.raises(ValueError, match='non-finite'):
        moment_statistics(torch.tensor([1.0, float('inf')]))


def test_js_divergence_zero_positive_bounded():
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.standard_normal(20000))
    p, q, edges = histogram_pair(a, a.clone(), bins=50)
    assert js_divergence(p, q) == 0.0
    p, q, _ = histogram_pair(a, a + 0.5, bins=50)
    shifted = js_divergence(p, q)
    assert 0 < shifted < math.log(2)
    # scipy's Jensen-Shannon distance (natural log) is the square root of the divergence
    assert shifted == pytest.approx(jensenshannon(p.numpy(), q.numpy()) ** 2, rel=1e-9)
    p, q, _ = histogram_pair(a, a + 100.0, bins=50)  # disjoint supports: the maximum
    assert js_divergence(p, q) == pytest.approx(math.log(2))
    for _ in range(20):
        p, q = torch.from_numpy(rng.random(30)), torch.from_numpy(rng.random(30))
        assert 0 <= js_divergence(p, q) <= math.log(2)
        assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    with pytest.raises(ValueError, match='same bins'):
        js_divergence(torch.ones(3), torch.ones(4))


def test_histogram_pair_shares_bins():
    a, b = torch.tensor([0.0, 1.0, 1.0, 2.0]), torch.tensor([1.5, 3.0])
    p, q, edges = histogram_pair(a, b, bins=3)
    np.testing.assert_allclose(edges.numpy(), np.linspace(0, 3, 4))
    ref_p, _ = np.histogram(a.numpy(), bins=edges.numpy())
    ref_q, _ = np.histogram(b.numpy(), bins=edges.numpy())
    np.testing.assert_allclose(p.numpy(), ref_p / ref_p.sum())
    np.testing.assert_allclose(q.numpy(), ref_q / ref_q.sum())


def test_image_bootstrap_equals_resampling_the_images_by_hand():
    rng = np.random.default_rng(2)
    sizes = [50, 80, 30, 60]
    clean = torch.from_numpy(rng.standard_normal(sum(sizes)))
    distorted = clean * 1.3 + torch.from_numpy(rng.standard_normal(sum(sizes))) * 0.2
    _, _, edges = histogram_pair(clean, distorted, bins=20)
    got = image_bootstrap_js(clean, distorted, sizes, edges, num_resamples=5, seed=7)
    # the same draws, done literally: repeat every image as often as it was drawn, then the ordinary histograms
    weights = np.random.default_rng(7).multinomial(len(sizes), np.full(len(sizes), 1 / len(sizes)), size=5)
    for js, w in zip(got, weights):
        pick = [i for i, count in enumerate(w) for _ in range(count)]
        a = torch.cat([clean.split(sizes)[i] for i in pick])
        b = torch.cat([distorted.split(sizes)[i] for i in pick])
        p, q, _ = histogram_pair(a, b, bins=20, value_range=(edges[0].item(), edges[-1].item()))
        assert js.item() == pytest.approx(js_divergence(p, q), rel=1e-12, abs=1e-15)
    assert got.std() > 0  # the resamples differ
    same = image_bootstrap_js(clean, clean.clone(), sizes, edges, num_resamples=5)
    assert (same == 0).all()
    with pytest.raises(ValueError, match='image_sizes must be positive and sum to the size'):
        image_bootstrap_js(clean, distorted, [50, 80], edges, num_resamples=5)
    with pytest.raises(ValueError, match='num_resamples must be >= 1'):
        image_bootstrap_js(clean, distorted, sizes, edges, num_resamples=0)
    shifts = compare_activations({'x': clean}, {'x': distorted}, bins=20, image_sizes={'x': sizes}, bootstrap=50)
    assert 0 < shifts[0].js_std < shifts[0].js_divergence
    assert math.isnan(compare_activations({'x': clean}, {'x': distorted}, bins=20)[0].js_std)
    with pytest.raises(ValueError, match='bootstrap needs image_sizes'):
        compare_activations({'x': clean}, {'x': distorted}, bootstrap=5)


class _Detectorish(nn.Module):
    """A model with a backbone (the project's ZF) and a non-backbone conv, like mmdet's detectors."""

    def __init__(self):
        super().__init__()
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules()
        self.backbone = MODELS.build(dict(type='ZF', out_indices=(4, )))
        self.head = nn.Conv2d(256, 4, 1)


def test_default_layers_are_the_backbone_convs_and_unknown_names_fail():
    model = _Detectorish()
    layers = resolve_layers(model)
    assert list(layers) == [f'backbone.conv{i}' for i in range(1, 6)]
    assert list(resolve_layers(model, ['conv2', 'head'])) == ['backbone.conv2', 'head']
    with pytest.raises(ValueError, match=r"no layer named \['conv9'\].*backbone\.conv1.*head"):
        resolve_layers(model, ['conv9'])


def test_sampler_keeps_the_same_positions_for_the_same_shapes():
    model = _Detectorish().eval()
    conv1 = model.backbone.conv1
    with torch.no_grad():
        conv1.bias.zero_()  # conv1 is then linear: doubling the input doubles every output value
    layers = resolve_layers(model, ['backbone.conv1', 'backbone.conv5'])
    x = torch.randn(2, 3, 64, 80)
    runs = []
    for inp in (x, x * 2.0):
        with ActivationSampler(layers, values_per_image=500, seed=3) as sampler, torch.no_grad():
            model.backbone(inp)
        runs.append(sampler.values())
    assert runs[0]['backbone.conv1'].numel() == 2 * 500  # capped per image
    with torch.no_grad():
        full = conv1(x).reshape(2, -1)
    assert torch.isin(runs[0]['backbone.conv1'][:500], full[0]).all()  # a subset of image 0's output
    assert not torch.isin(runs[0]['backbone.conv1'][:500], full[1]).all()
    # the same positions in both passes
    torch.testing.assert_close(runs[1]['backbone.conv1'], 2 * runs[0]['backbone.conv1'], rtol=1e-4, atol=1e-4)
    assert not conv1._forward_hooks  # removed on exit


def test_strict_loading_lists_missing_unexpected_and_mis_shaped_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    state = model.state_dict()
    state.pop('1.bias')
    state['2.weight'] = torch.zeros(1)
    state['0.weight'] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(ValueError) as err:
        load_weights_strict(model, state, source='checkpoint x.pth')
    msg = str(err.value)
    assert 'checkpoint x.pth does not match' in msg
    assert "missing keys (1): ['1.bias']" in msg and "unexpected keys (1): ['2.weight']" in msg
    assert '0.weight: checkpoint (4, 3, 5, 5) vs model (4, 3, 3, 3)' in msg


# ----------------------------------------------------------------------------------------- end to end (ZF, VOC)
@pytest.fixture(scope='module')
def zf_setup(tmp_path_factory, repo_root):
    """A generated VOC test set and a checkpoint of the baseline ZF detector (small fc6/fc7)."""
    from mmdet.registry import MODELS

    from featquant_mmdet.engine.loading import load_config
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    root = tmp_path_factory.mktemp('fm')
    data_root = make_voc_dataset(str(root / 'data'), num_train=1, num_test=3, image_size=(128, 96), seed=0)
    options = {'test_dataloader.dataset.data_root': data_root + '/',
               'test_dataloader.dataset.pipeline.1.scale': (128, 96),
               'model.roi_head.bbox_head.fc_out_channels': 32}
    checkpoints = {}
    for name in ('faster_rcnn_zf_voc', ):
        config = f'{repo_root}/configs/{name}.py'
        torch.manual_seed(0)
        model = MODELS.build(load_config(config, options).model)
        model.init_weights()
        checkpoints[name] = str(root / f'{name}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoints[name])
    cli_options = [f'{k}={v}' for k, v in options.items()]
    cli_options[1] = f'test_dataloader.dataset.pipeline.1.scale={IMAGE_SCALE}'
    return dict(root=root, checkpoints=checkpoints, cli_options=cli_options, repo_root=repo_root)


def test_tool_end_to_end_zero_shift_for_clean_level_and_files(zf_setup, tmp_path, load_tool):
    tool = load_tool('analysis/feature_moments')
    config = f'{zf_setup["repo_root"]}/configs/faster_rcnn_zf_voc.py'
    ckpt = zf_setup['checkpoints']['faster_rcnn_zf_voc']
    # level 0 is the clean image: the "distorted" pass sees the same images, so nothing may differ
    clean = tool.main([config, ckpt, '--distortion', 'gaussian_noise_y', '--level', '0', '--num-images', '2',
                       '--values-per-image', '3000', '--out-dir', str(tmp_path / 'l0'),
                       '--cfg-options', *zf_setup['cli_options']])
    assert [s.layer for s in clean] == [f'backbone.conv{i}' for i in range(1, 6)]
    for s in clean:
        assert s.js_divergence == 0.0 and s.js_std == 0.0 and s.clean == s.distorted
    noisy = tool.main([config, ckpt, '--distortion', 'gaussian_noise_y', '--level', '4', '--num-images', '2',
                       '--layers', 'conv1', 'backbone.conv5', '--values-per-image', '3000',
                       '--out-dir', str(tmp_path / 'l4'), '--cfg-options', *zf_setup['cli_options']])
    assert [s.layer for s in noisy] == ['backbone.conv1', 'backbone.conv5']
    assert all(0 < s.js_divergence <= math.log(2) and s.js_std > 0 for s in noisy)
    assert noisy[0].distorted['variance'] > noisy[0].clean['variance']  # noise adds variance at conv1
    with open(tmp_path / 'l4' / 'feature_moments.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['layer'] for r in rows] == ['backbone.conv1', 'backbone.conv5']
    assert float(rows[0]['js_divergence']) == pytest.approx(noisy[0].js_divergence)
    assert float(rows[0]['js_std']) == pytest.approx(noisy[0].js_std)
    table = (tmp_path / 'l4' / 'feature_moments.md').read_text()
    assert '| backbone.conv5 |' in table and f'{noisy[1].js_divergence:.4f} ± {noisy[1].js_std:.4f} |' in table
    import matplotlib.image as mpimg
    assert mpimg.imread(tmp_path / 'l4' / 'feature_densities.png').shape[1] > 300


def test_tool_errors_for_unknown_layer_and_mismatched_checkpoint(zf_setup, tmp_path, capsys, load_tool):
    tool = load_tool('analysis/feature_moments')
    repo = zf_setup['repo_root']
    ckpts = zf_setup['checkpoints']
    common = ['--distortion', 'jpeg', '--level', '2', '--num-images', '1', '--out-dir', str(tmp_path),
              '--cfg-options', *zf_setup['cli_options']]
    with pytest.raises(ValueError, match=r"no layer named \['conv7'\].*backbone\.conv5"):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', ckpts['faster_rcnn_zf_voc'], '--layers', 'conv7',
                   *common])
    # the baseline checkpoint for the POW-1 config: the exponents are missing
    with pytest.raises(ValueError, match=r'(?s)does not match.*missing keys \(3\).*backbone\.conv3\.alpha'):
        tool.main([f'{repo}/configs/faster_rcnn_zf_pow1_voc.py', ckpts['faster_rcnn_zf_voc'], *common])
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', str(tmp_path / 'nope.pth'), *common])
    with pytest.raises(ValueError, match="unknown distortion 'fog'"):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', ckpts['faster_rcnn_zf_voc'], '--distortion', 'fog',
                   '--level', '1', '--out-dir', str(tmp_path), '--cfg-options', *zf_setup['cli_options']])
    with pytest.raises(ValueError, match='invalid level'):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', ckpts['faster_rcnn_zf_voc'], '--distortion', 'jpeg',
                   '--level', '9', '--out-dir', str(tmp_path), '--cfg-options', *zf_setup['cli_options']])
    with pytest.raises(SystemExit):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', ckpts['faster_rcnn_zf_voc'], '--bootstrap', '-1',
                   *common])
    assert '--bootstrap must be >= 0, got -1' in capsys.readouterr().err
    with pytest.raises(ValueError, match=r'test dataset has 3 images, 100 were requested'):
        tool.main([f'{repo}/configs/faster_rcnn_zf_voc.py', ckpts['faster_rcnn_zf_voc'], '--distortion', 'jpeg',
                   '--level', '1', '--out-dir', str(tmp_path), '--cfg-options', *zf_setup['cli_options']])
