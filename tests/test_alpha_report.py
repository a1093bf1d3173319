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
    assert np.isnan(table['a']['std_images']) and np.isnan(table['all layers']['std_images'])  # learned: shared
    per_image = torch.tensor([[[-0.5, 0.1]], [[-0.3, 0.1]], [[-0.1, 0.4]]])  # (N=3 images, Lambda=1, C=2)
    spread = summarize_exponents({'h': per_image, 'g': per_image * 2})
    want = per_image.numpy().astype(np.float64).std(0).mean()  # per channel over the images, then averaged
    assert spread['h']['std_images'] == pytest.approx(want) and spread['g']['std_images'] == pytest.approx(2 * want)
    assert spread['all layers']['std_images'] == pytest.approx(1.5 * want)
    broken = summarize_exponents({'c': torch.tensor([float('nan'), 1.0, 3.0])})['c']
    assert broken['count'] == 3 and broken['nonfinite'] == 1 and broken['mean'] == 2.0
    with pytest.raises(ValueError, match='no exponents'):
        summarize_exponents({})


def test_streamed_hpow_summary_equals_the_exact_one_within_a_bin():
    """Per-image exponents fed in batches give the exact summary's count, mean, std, min, max, fractions and
    std_images, and its quantiles within one histogram bin (6 / 60000); pooled layers as the exact pooled row."""
    from featquant_mmdet.analysis.exponent_stats import StreamedExponents
    rng = np.random.default_rng(0)
    layers = {'a': torch.tensor(-1 + 6 / (1 + np.exp(-rng.normal(-0.3, 0.5, (300, 2, 40)))), dtype=torch.float32),
              'b': torch.tensor(rng.uniform(-1, 5, (300, 1, 16)), dtype=torch.float32)}
    layers['a'][7, 1, 3] = float('nan')  # one broken image in one column: that column leaves std_images
    exact = summarize_exponents(layers)
    streamed = {}
    for name, t in layers.items():
        streamed[name] = StreamedExponents()
        for i in range(0, 300, 32):  # batches of 32, the last one shorter
            streamed[name].add(t[i:i + 32])
    table = summarize_exponents(streamed)
    assert list(table) == list(exact) == ['a', 'b', 'all layers']
    for name in table:
        for key in ('count', 'nonfinite', 'min', 'max', 'frac_negative', 'frac_clamped'):
            assert table[name][key] == exact[name][key], (name, key)
        for key in ('mean', 'std', 'std_images'):
            assert table[name][key] == pytest.approx(exact[name][key], rel=1e-9, abs=1e-12), (name, key)
        for key in ('p05', 'median', 'p95'):
            assert abs(table[name][key] - exact[name][key]) <= 6 / 60000, (name, key)
    assert table['a']['nonfinite'] == 1 and 0 < table['all layers']['std_images'] < table['all layers']['std']
    # values beyond [-1, 5] land in the outer bins: their count (frac_clamped) and min / max stay exact
    outside = StreamedExponents()
    outside.add(torch.tensor([[[-1.5, 0.0, 6.0, 0.5]], [[-1.25, 0.1, 7.0, 0.5]]]))
    row = outside.summary()
    assert row['min'] == -1.5 and row['max'] == 7.0 and row['frac_clamped'] == 0.5
    assert row['p05'] == pytest.approx(np.quantile([-1.5, 0.0, 6.0, 0.5, -1.25, 0.1, 7.0, 0.5], 0.05), abs=0.25)
    mixed = summarize_exponents({'h': streamed['a'], 'learned': torch.linspace(-0.5, 0.5, 10)})
    assert mixed['all layers']['count'] == streamed['a'].count + 10 and np.isnan(mixed['all layers']['std_images'])


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
    assert 0 < table['all layers']['std_images'] < table['all layers']['std']  # images differ, less than channels
    import matplotlib.image as mpimg
    assert mpimg.imread(tmp_path / 'o' / 'alpha_histograms.png').shape[1] > 300  # drawn from the streamed layers


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


# ------------------------------------------------------------------------------ drift report and trajectory
def _drift_cfg(repo_root, root, config='zf_pow1_imagenet.py', lr_mult=None):
    from featquant_mmdet.engine.loading import load_config
    options = {'model.head.num_classes': 6, 'model.head.hidden_channels': 32,
               'train_dataloader.dataset.data_root': root, 'train_dataloader.dataset.pipeline.1.scale': 32, 'train_dataloader.batch_size': 4,
               'auto_scale_lr.enable': False}
    cfg = load_config(f'{repo_root}/configs/pretrain/{config}', options)
    if lr_mult is not None:
        cfg.optim_wrapper.paramwise_cfg.custom_keys['.alpha'].lr_mult = lr_mult
    return cfg


@pytest.fixture(scope='module')
def tiny_imagenet(tmp_path_factory):
    from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
    root = str(tmp_path_factory.mktemp('drift_imagenet'))
    make_imagenet_dataset(root, num_train_per_class=2, num_val_per_class=1, image_size=64, seed=0)
    return root


def test_drift_report_equals_a_hand_computation_from_one_backward_pass(repo_root, tiny_imagenet, one_torch_thread):
    from mmdet.registry import MODELS

    from featquant_mmdet.analysis.alpha_drift import alpha_drift_report, first_train_batch
    cfg = _drift_cfg(repo_root, tiny_imagenet, lr_mult=30.0)
    table, info = alpha_drift_report(cfg, seed=3)

    # by hand: the same model, batch and seeds; plain torch from the loss on
    torch.manual_seed(3)
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch, iters_per_epoch = first_train_batch(cfg, seed=3)
    assert iters_per_epoch == 3  # 12 images, batch 4
    model.train()
    torch.manual_seed(3)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    convs = [model.backbone.conv3, model.backbone.conv4, model.backbone.conv5]
    penalty = sum(1e-4 * c.alpha.abs().sum() + 1e-4 * c.alpha.square().sum() for c in convs)  # l1 = l2 = 1e-4
    loss = sum(v for k, v in losses.items() if 'loss' in k) + penalty
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    clip = min(1.0, 10.0 / (norm + 1e-6))  # zf_imagenet.py: clip_grad max_norm 10
    assert info['loss'] == pytest.approx(loss.item(), rel=1e-5)
    assert info['grad_total_norm'] == pytest.approx(norm, rel=1e-5) and info['clip_factor'] == pytest.approx(clip)
    # schedule: 90 epochs x 3 iterations, lr x0.1 at epochs 30 and 60
    assert info['iterations'] == 270 and info['lr_factor_sum'] == pytest.approx(3 * (30 + 3 + 0.3))
    lr, lr_alpha, mu, wd = 0.01, 0.01 * 30.0, 0.9, 5e-4
    assert [row['layer'] for row in table] == ['backbone.conv3', 'backbone.conv4', 'backbone.conv5']
    for row, conv in zip(table, convs):
        g = conv.alpha.grad.abs()
        step = lr_alpha * clip * g  # decay_mult 0 on alpha
        assert row['count'] == conv.alpha.numel() and row['lr'] == pytest.approx(lr_alpha)
        assert row['lr_mult'] == pytest.approx(30.0) and row['momentum'] == mu
        assert row['grad_abs_mean'] == pytest.approx(g.mean().item(), rel=1e-5)
        assert row['step_mean'] == pytest.approx(step.mean().item(), rel=1e-5)
        assert row['step_max'] == pytest.approx(step.max().item(), rel=1e-5)
        assert row['bound_max'] == pytest.approx(step.max().item() / (1 - mu), rel=1e-5)
        dw = lr * (clip * conv.weight.grad + wd * conv.weight.detach())
        rel = (dw.norm() / conv.weight.detach().norm()).item()
        assert row['weight_rel_step'] == pytest.approx(rel, rel=1e-5)
        assert row['weight_rel_bound'] == pytest.approx(rel / (1 - mu), rel=1e-5)
        assert row['parity_lr_mult'] == pytest.approx(rel / (lr * clip * g.mean().item()), rel=1e-5)
        assert row['schedule_drift_max'] == pytest.approx(step.max().item() / (1 - mu) * 99.9, rel=1e-5)
    assert info['drift_max'] == max(row['schedule_drift_max'] for row in table)


def test_drift_tool_without_exponents_notes_it_and_bad_input_exits_2(repo_root, tiny_imagenet, tmp_path, load_tool,
                                                                     capsys, one_torch_thread):
    tool = load_tool('analysis/alpha_report')
    options = ['model.head.num_classes=6', 'model.head.hidden_channels=32', 'train_dataloader.batch_size=4',
               f'train_dataloader.dataset.data_root={tiny_imagenet}', 'train_dataloader.dataset.pipeline.1.scale=32']
    table, info = tool.main(['drift', f'{repo_root}/configs/pretrain/zf_imagenet.py', '--out-dir', str(tmp_path),
                             '--cfg-options', *options])
    assert table is None and 'no learnable exponents' in info['note']
    assert 'no learnable exponents' in (tmp_path / 'alpha_drift.md').read_text()
    table, info = tool.main(['drift', f'{repo_root}/configs/pretrain/zf_pow1_imagenet.py', '--alpha-lr-mult', '0',
                             '--out-dir', str(tmp_path / 'p'), '--cfg-options', *options])
    assert all(row['lr'] == 0 and row['step_max'] == 0 and row['parity_lr_mult'] > 0 for row in table)
    assert '| backbone.conv4 |' in (tmp_path / 'p' / 'alpha_drift.md').read_text()
    capsys.readouterr()
    for argv, message in ((['drift', f'{repo_root}/configs/pretrain/zf_pow1_imagenet.py', '--alpha-lr-mult', '-1'],
                           '--alpha-lr-mult must be a finite number >= 0'),
                          (['drift', str(tmp_path / 'missing.py')], 'config file not found'),
                          (['trajectory', str(tmp_path / 'nowhere')], 'no such work dir or file')):
        with pytest.raises(SystemExit) as exit_info:
            tool.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and 'Traceback' not in err


def _tiny_stats_run(work_dir):
    """A real Runner run of a one-PowConv model with AlphaStatsHook every iteration: work_dir/<ts>/alpha_stats.jsonl."""
    import torch.nn.functional as F
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Net(BaseModel):
        def __init__(self):
            super().__init__()
            self.conv = PowConv(3, 4, 3, padding=1, alpha_init=0.2)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            logits = self.fc(F.relu(self.conv(torch.stack(inputs))).mean(dim=(2, 3)))
            return dict(loss_cls=F.cross_entropy(logits, torch.as_tensor(data_samples))) if mode == 'loss' else logits

    gen = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.rand(3, 8, 8, generator=gen) * 3, data_samples=i % 2) for i in range(8)]
    torch.manual_seed(0)
    runner = Runner(model=Net(), work_dir=str(work_dir),
                    train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                                          batch_size=2, collate_fn=dict(type='pseudo_collate')),
                    train_cfg=dict(by_epoch=False, max_iters=4),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=5.0)),
                    custom_hooks=[dict(type='AlphaStatsHook', interval=1)], default_scope='mmdet',
                    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10**6)),
                    experiment_name=f'traj_{id(work_dir)}')
    runner.train()
    return runner


def test_trajectory_plot_and_table_from_the_hook_records_and_a_run_without_exponents(tmp_path, load_tool, capsys):
    import json
    import os

    import matplotlib.image as mpimg
    runner = _tiny_stats_run(tmp_path / 'pow')
    records = [json.loads(line) for line in open(f'{runner.log_dir}/alpha_stats.jsonl')]
    assert [r['iter'] for r in records] == [1, 2, 3, 4]
    os.makedirs(tmp_path / 'plain')  # a run of a model without exponents writes no alpha_stats.jsonl
    tool = load_tool('analysis/alpha_report')
    out = tmp_path / 'out'
    table, notes = tool.main(['trajectory', str(tmp_path / 'pow'), str(tmp_path / 'plain'), '--labels', 'POW-1',
                              'plain', '--out-dir', str(out)])
    assert len(notes) == 1 and notes[0].startswith('plain: no alpha_stats.jsonl') and 'left out' in notes[0]
    rows = {row['layer']: row for row in table}
    assert set(rows) == {'conv', 'all'} and all(row['run'] == 'POW-1' for row in table)
    means = [r['layers']['conv']['mean'] for r in records]
    assert rows['conv']['mean_first'] == means[0] and rows['conv']['mean_last'] == means[-1]
    assert rows['conv']['max_mean_shift'] == pytest.approx(max(abs(m - means[0]) for m in means))
    assert rows['conv']['max_mean_shift'] > 0  # lr 5 moved them
    assert rows['conv']['min_last'] == records[-1]['layers']['conv']['min'] and rows['conv']['last_iter'] == 4
    assert mpimg.imread(out / 'alpha_trajectory.png').shape[1] > 300
    assert 'plain: no alpha_stats.jsonl' in (out / 'alpha_trajectory.md').read_text()
    # only runs without exponents: no plot, the note, no crash
    table, notes = tool.main(['trajectory', str(tmp_path / 'plain'), '--out-dir', str(tmp_path / 'none')])
    assert table is None and len(notes) == 1 and not (tmp_path / 'none' / 'alpha_trajectory.png').exists()
    assert 'left out' in (tmp_path / 'none' / 'alpha_trajectory.md').read_text()
    assert 'note: plain: no alpha_stats.jsonl' in capsys.readouterr().out
