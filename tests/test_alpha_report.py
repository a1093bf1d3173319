"""Report of learned exponents: which tensors are read, the summary against numpy, the tool on ZF checkpoints."""
import csv

import numpy as np
import pytest
import torch

from featquant_mmdet.analysis.alpha_report import (exponent_parameter_names, exponents_from_state_dict,
                                                   summarize_exponents)
from featquant_mmdet.layers.quant_conv import PowConv, SFPowConv

OPTIONS = {'model.roi_head.bbox_head.fc_out_channels': 32}


def test_exponent_name_is_read_off_powconv():
    assert exponent_parameter_names() == ['alpha']
    conv = PowConv(4, 2, 3, num_portions=2)
    with torch.no_grad():
        conv.alpha.copy_(torch.arange(8.0).view(2, 4) / 10 - 0.5)
    state = {f'backbone.{k}': v for k, v in conv.state_dict().items()}
    state['neck.weight'] = torch.zeros(3)
    state['backbone.steps'] = torch.tensor([1, 2])  # an integer buffer is never an exponent
    found = exponents_from_state_dict(state)
    assert list(found) == ['backbone']
    torch.testing.assert_close(found['backbone'], conv.alpha.detach())
    assert list(exponents_from_state_dict({'x.alpha': torch.tensor([1, 2])})) == []


def test_summary_matches_numpy():
    values = {'a': torch.tensor([-1.5, -0.5, 0.0, 0.25, 6.0]), 'b': torch.linspace(-0.9, 0.9, 7)}
    table = summarize_exponents(values)
    a = values['a'].numpy().astype(np.float64)
    assert table['a']['count'] == 5
    assert table['a']['mean'] == pytest.approx(a.mean()) and table['a']['std'] == pytest.approx(a.std())
    assert table['a']['median'] == pytest.approx(0.0) and table['a']['p95'] == pytest.approx(np.quantile(a, 0.95))
    assert table['a']['frac_negative'] == pytest.approx(0.4)
    assert table['a']['frac_clamped'] == pytest.approx(0.4)  # -1.5 and 6.0 lie outside [-1, 5]
    pooled = np.concatenate([a, values['b'].numpy()])
    assert table['all layers']['count'] == 12 and table['all layers']['mean'] == pytest.approx(pooled.mean())
    broken = summarize_exponents({'c': torch.tensor([float('nan'), 1.0, 3.0])})['c']
    assert broken['count'] == 3 and broken['nonfinite'] == 1 and broken['mean'] == 2.0
    with pytest.raises(ValueError, match='no exponents'):
        summarize_exponents({})


def _save(config, path, options, mutate=None):
    from mmdet.registry import MODELS

    from featquant_mmdet.engine.loading import load_config
    torch.manual_seed(0)
    model = MODELS.build(load_config(config, options).model)
    if mutate is not None:
        mutate(model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model


def _set_known_exponents(model):
    with torch.no_grad():
        for i, name in enumerate(('conv3', 'conv4', 'conv5')):
            conv = getattr(model.backbone, name)
            conv.alpha.copy_(torch.linspace(-0.9, 0.2 * i, conv.alpha.numel()).view_as(conv.alpha))


def test_tool_on_pow1_checkpoint_with_and_without_config(tmp_path, repo_root, load_tool):
    tool = load_tool('analysis/alpha_report')
    config = f'{repo_root}/configs/faster_rcnn_zf_sfpow_voc.py'
    ckpt = str(tmp_path / 'sfpow.pth')
    model = _save(config, ckpt, OPTIONS, _set_known_exponents)
    assert isinstance(model.backbone.conv3, SFPowConv)
    options = [f'{k}={v}' for k, v in OPTIONS.items()]
    by_state = tool.main([ckpt, '--out-dir', str(tmp_path / 'a')])
    by_model = tool.main([config, ckpt, '--out-dir', str(tmp_path / 'b'), '--cfg-options', *options])
    assert list(by_state) == list(by_model) == ['backbone.conv3', 'backbone.conv4', 'backbone.conv5', 'all layers']
    for name in ('conv3', 'conv4', 'conv5'):
        ref = getattr(model.backbone, name).alpha.detach().numpy().ravel().astype(np.float64)
        for table in (by_state, by_model):
            row = table[f'backbone.{name}']
            assert row['count'] == ref.size == getattr(model.backbone, name).in_channels
            assert row['mean'] == pytest.approx(ref.mean(), rel=1e-6)
            assert row['min'] == pytest.approx(-0.9) and row['max'] == pytest.approx(ref.max())
    with open(tmp_path / 'b' / 'alpha_summary.csv') as f:
        rows = list(csv.DictReader(f))
    assert rows[0]['layer'] == 'backbone.conv3' and float(rows[0]['min']) == pytest.approx(-0.9)
    assert '| backbone.conv5 |' in (tmp_path / 'b' / 'alpha_summary.md').read_text()
    import matplotlib.image as mpimg
    assert mpimg.imread(tmp_path / 'a' / 'alpha_histograms.png').shape[1] > 300


def test_tool_hpow_needs_images_and_collects_per_image_exponents(tmp_path, repo_root, load_tool):
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    tool = load_tool('analysis/alpha_report')
    config = f'{repo_root}/configs/faster_rcnn_zf_hpow_voc.py'
    data_root = make_voc_dataset(str(tmp_path / 'data'), num_train=1, num_test=3, image_size=(96, 64), seed=0)

    def spread_exponents(model):  # away from the init (alpha = 0 for every image), so images differ
        with torch.no_grad():
            for name in ('conv3', 'conv4', 'conv5'):
                getattr(model.backbone, name).hyper_fc2.weight.normal_(0, 1e-3)

    ckpt = str(tmp_path / 'hpow.pth')
    _save(config, ckpt, OPTIONS, spread_exponents)
    options = [f'{k}={v}' for k, v in OPTIONS.items()] + [
        f'test_dataloader.dataset.data_root={data_root}/', 'test_dataloader.dataset.pipeline.1.scale=(96,64)']
    with pytest.raises(ValueError, match=r"HPowConv layers \['backbone.conv3'.*--num-images"):
        tool.main([config, ckpt, '--out-dir', str(tmp_path / 'o'), '--cfg-options', *options])
    table = tool.main([config, ckpt, '--num-images', '2', '--out-dir', str(tmp_path / 'o'), '--cfg-options',
                       *options])
    assert table['backbone.conv3']['count'] == 2 * 256  # 2 images x Lambda=1 x 256 input channels
    assert table['backbone.conv4']['count'] == 2 * 384
    assert -1 < table['all layers']['min'] < table['all layers']['max'] < 5 and table['all layers']['std'] > 0


def test_tool_errors(tmp_path, repo_root, load_tool):
    tool = load_tool('analysis/alpha_report')
    base = str(tmp_path / 'base.pth')
    _save(f'{repo_root}/configs/faster_rcnn_zf_voc.py', base, OPTIONS)
    with pytest.raises(ValueError, match=r"has no learned exponents \(no parameter named \['alpha'\]"):
        tool.main([base, '--out-dir', str(tmp_path)])
    with pytest.raises(ValueError, match='has no layer with exponents'):
        tool.main([f'{repo_root}/configs/faster_rcnn_zf_voc.py', base, '--out-dir', str(tmp_path),
                   '--cfg-options', *[f'{k}={v}' for k, v in OPTIONS.items()]])
    with pytest.raises(SystemExit):
        tool.main(['a.py', 'b.pth', 'c.pth'])
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        tool.main([str(tmp_path / 'missing.pth')])
