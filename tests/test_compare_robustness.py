"""tools/compare_robustness.py on two real sweeps (ZF and ZF+POW-1 classifiers on generated ImageNet-format data):
the paper-layout table (Markdown, CSV) with differences to the first model, mCE against it, and the level plot."""
import csv
import io
import json
import os.path as osp

import pytest

from test_robustness import save_initial_checkpoint  # tests/ is on sys.path under pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {'ZF': osp.join(REPO, 'configs', 'pretrain', 'zf_imagenet.py'),
           'ZF+POW-1': osp.join(REPO, 'configs', 'pretrain', 'zf_pow1_imagenet.py')}
METRIC = 'accuracy/top5'


@pytest.fixture(scope='module')
def two_sweeps(tmp_path_factory, load_tool):
    """ZF and ZF+POW-1 swept by tools/robustness.py over clean, motion blur 1-2 and Mix.; POW-1 against ZF for mCE."""
    from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
    root = tmp_path_factory.mktemp('compare_robustness')
    data_root = str(root / 'imagenet')
    make_imagenet_dataset(data_root, num_train_per_class=1, num_val_per_class=2, image_size=64, seed=0)
    options = {
        'test_dataloader.dataset.data_root': data_root + '/',
        'model.head.num_classes': 6,
        'model.head.hidden_channels': 64,
        'test_dataloader.dataset.pipeline.1.scale': 64,
        'test_dataloader.dataset.pipeline.2.crop_size': 64,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
    }
    tool = load_tool('robustness')
    paths = {}
    for seed, (label, config) in enumerate(CONFIGS.items()):
        ckpt = save_initial_checkpoint(config, options, str(root / f'{label}.pth'), seed, init_weights=False)
        work_dir = str(root / label)
        argv = [config, ckpt, '--distortions', 'motion_blur', 'mix', '--levels', '1', '2', '--metric', METRIC,
                '--work-dir', work_dir]
        if paths:
            argv += ['--reference', paths['ZF']]
        tool.main(argv + ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()])
        paths[label] = osp.join(work_dir, 'robustness.json')
    results = {label: json.load(open(path)) for label, path in paths.items()}
    return dict(root=root, paths=paths, results=results)


def expected_row(results):
    """Clean, M.Blur (mean of levels 1-2), Mix., mPC, rPC by hand from the stored cells, in percent."""
    cells = results['cells']
    value = {key: cell['metrics'][METRIC] for key, cell in cells.items()}
    blur = (value['motion_blur@1'] + value['motion_blur@2']) / 2
    mpc = (blur + value['mix']) / 2
    return [value['clean'], blur, value['mix'], mpc, 100 * mpc / value['clean']]


def expected_mce(results, reference):
    err = {key: 100 - cell['metrics'][METRIC] for key, cell in results['cells'].items()}
    ref = {key: 100 - cell['metrics'][METRIC] for key, cell in reference['cells'].items()}
    ce_blur = (err['motion_blur@1'] + err['motion_blur@2']) / (ref['motion_blur@1'] + ref['motion_blur@2'])
    ce_mix = err['mix'] / ref['mix']
    return (ce_blur + ce_mix) / 2


def test_sweep_with_reference_stores_ce_and_mce(two_sweeps):
    zf, pow1 = two_sweeps['results']['ZF'], two_sweeps['results']['ZF+POW-1']
    summary = pow1['summary']
    assert summary['mCE'] == pytest.approx(expected_mce(pow1, zf))
    assert summary['reference']['config_name'] == 'zf_imagenet'
    assert summary['reference']['path'] == osp.abspath(two_sweeps['paths']['ZF'])
    assert 'mCE' not in zf['summary']


def test_table_markdown_csv_and_plot_from_two_result_files(two_sweeps, tmp_path, capsys, load_tool):
    out_dir = tmp_path / 'report'
    paths = load_tool('compare_robustness').main(
        [two_sweeps['paths']['ZF'], two_sweeps['paths']['ZF+POW-1'], '--labels', 'ZF', 'ZF+POW-1', '--out-dir',
         str(out_dir), '--reference', two_sweeps['paths']['ZF']])
    zf, pow1 = two_sweeps['results']['ZF'], two_sweeps['results']['ZF+POW-1']
    rows = {'ZF': expected_row(zf) + [100.0], 'ZF+POW-1': expected_row(pow1) + [100 * expected_mce(pow1, zf)]}

    with open(paths['robustness_table.csv']) as f:
        table = list(csv.reader(f))
    assert table[0] == ['model', 'row', 'Clean', 'M.Blur', 'Mix.', 'mPC', 'rPC', 'mCE']
    assert [r[:2] for r in table[1:]] == [['ZF', 'value'], ['ZF+POW-1', 'value'], ['ZF+POW-1', 'diff_to_ZF']]
    for label, line in zip(('ZF', 'ZF+POW-1'), table[1:3]):
        assert [float(v) for v in line[2:]] == pytest.approx(rows[label], abs=1e-4)
    diff = [b - a for a, b in zip(rows['ZF'], rows['ZF+POW-1'])]
    assert [float(v) for v in table[3][2:]] == pytest.approx(diff, abs=1e-4)

    markdown = open(paths['robustness_table.md']).read()
    assert markdown == capsys.readouterr().out.split('written: ')[0].rstrip('\n') + '\n'
    lines = markdown.splitlines()
    assert '| Model | Clean | M.Blur | Mix. | mPC | rPC | mCE |' in lines
    assert '| ZF | ' + ' | '.join(f'{v:.2f}' for v in rows['ZF']) + ' |' in lines
    assert '| ZF+POW-1 | ' + ' | '.join(f'{v:+.2f}' for v in diff) + ' |' in lines
    assert 'Difference to ZF (percentage points)' in markdown

    from matplotlib.image import imread
    image = imread(paths['robustness_levels.png'])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05  # drawn, not a blank canvas


def test_level_curves_start_at_the_clean_value(two_sweeps):
    from featquant_mmdet.evaluation.robustness.report import level_curves
    results = two_sweeps['results']['ZF']
    curves = level_curves(results, METRIC)
    assert list(curves) == ['motion_blur']  # the mixture has no levels: it gets the separate mixtures panel
    xs, ys = curves['motion_blur']
    assert xs == [0, 1, 2]
    assert ys == pytest.approx([results['cells'][k]['metrics'][METRIC]
                                for k in ('clean', 'motion_blur@1', 'motion_blur@2')])


def test_comparison_errors(two_sweeps, tmp_path, load_tool):
    main = load_tool('compare_robustness').main
    zf_path = two_sweeps['paths']['ZF']
    with pytest.raises(SystemExit, match='1 labels for 2 results files'):
        main([zf_path, two_sweeps['paths']['ZF+POW-1'], '--labels', 'ZF', '--out-dir', str(tmp_path)])
    other_seed = dict(two_sweeps['results']['ZF'])
    other_seed['identity'] = dict(other_seed['identity'], distortion_seed=7)
    other_path = tmp_path / 'other_seed.json'
    other_path.write_text(json.dumps(other_seed))
    with pytest.raises(SystemExit, match='B: distortion_seed 7 differs from A.s 0: the numbers are not comparable'):
        main([zf_path, str(other_path), '--labels', 'A', 'B', '--out-dir', str(tmp_path)])
    not_results = tmp_path / 'metrics.json'
    not_results.write_text(json.dumps({'accuracy/top1': 50.0}))
    with pytest.raises(SystemExit, match="metrics.json is not a robustness results file: format None"):
        main([zf_path, str(not_results), '--out-dir', str(tmp_path)])
    with pytest.raises(SystemExit, match="metric 'coco/bbox_mAP' not in its results"):
        main([zf_path, '--metric', 'coco/bbox_mAP', '--out-dir', str(tmp_path)])
    assert not osp.exists(tmp_path / 'robustness_table.md')  # nothing written on error


def test_markdown_and_csv_mark_missing_cells():
    from featquant_mmdet.evaluation.robustness import report
    columns = ['Clean', 'M.Blur', 'mPC', 'rPC']
    rows = [[90.0, 60.0, 60.0, 66.67], [91.0, None, 50.0, 54.95]]
    markdown = report.to_markdown(columns, rows, ['A', 'B'], METRIC)
    assert '| B | 91.00 | - | 50.00 | 54.95 |' in markdown
    assert '| B | +1.00 | - | -10.00 | -11.72 |' in markdown
    lines = list(csv.reader(io.StringIO(report.to_csv(columns, rows, ['A', 'B']))))
    assert lines[2] == ['B', 'value', '91.0000', '', '50.0000', '54.9500']
