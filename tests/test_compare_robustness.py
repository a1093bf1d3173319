"""tools/compare_robustness.py on two real sweeps (ZF and ZF+POW-1 classifiers on generated ImageNet-format data):
the paper-layout table (Markdown, CSV) with bootstrap intervals, paired differences to the first model with p-values
and Holm-adjusted p-values over the table's columns (no verdict between models: one training seed each), mCE against
it, the level plot with bands; a model against itself, a constructed better model, mismatched, old, missing or edited
per-image files; Holm's adjustment against a hand computation."""
import csv
import io
import json
import math
import os.path as osp
import re

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
         str(out_dir), '--ce-reference', two_sweeps['paths']['ZF']])
    zf, pow1 = two_sweeps['results']['ZF'], two_sweeps['results']['ZF+POW-1']
    rows = {'ZF': expected_row(zf) + [100.0], 'ZF+POW-1': expected_row(pow1) + [100 * expected_mce(pow1, zf)]}
    columns = ['Clean', 'M.Blur', 'Mix.', 'mPC', 'rPC', 'mCE']

    with open(paths['robustness_table.csv']) as f:
        table = list(csv.reader(f))
    assert table[0][:6] == ['model', 'row', 'Clean', 'Clean low (95%)', 'Clean high (95%)', 'Clean excludes 0']
    assert table[0][2::4] == columns
    assert [r[:2] for r in table[1:]] == [['ZF', 'value'], ['ZF+POW-1', 'value'], ['ZF+POW-1', 'diff_to_ZF'],
                                          ['ZF+POW-1', 'p_to_ZF'], ['ZF+POW-1', 'holm_p_to_ZF']]
    for label, line in zip(('ZF', 'ZF+POW-1'), table[1:3]):
        assert [float(v) for v in line[2::4]] == pytest.approx(rows[label], abs=1e-4)
        lows, highs = [float(v) for v in line[3::4]], [float(v) for v in line[4::4]]
        assert all(lo <= v + 1e-9 and v <= hi + 1e-9 for lo, v, hi in zip(lows, rows[label], highs))
    diff = [b - a for a, b in zip(rows['ZF'], rows['ZF+POW-1'])]
    assert [float(v) for v in table[3][2::4]] == pytest.approx(diff, abs=1e-4)
    assert set(table[3][5:-4:4]) <= {'0', '1'}  # mCE's may be undefined (a reference without errors)

    out = capsys.readouterr().out
    markdown = open(paths['robustness_table.md']).read()
    assert markdown == out.split('written: ')[0].rstrip('\n') + '\n'
    lines = markdown.splitlines()
    assert '| Model | ' + ' | '.join(f'{c} (95% CI)' for c in columns) + ' |' in lines
    zf_line = next(line for line in lines if line.startswith('| ZF | '))
    assert [float(c.split(' [')[0]) for c in zf_line.strip('| ').split(' | ')[1:]] == pytest.approx(
        rows['ZF'], abs=5e-3)
    assert 'Difference to ZF (percentage points; paired bootstrap' in markdown
    from featquant_mmdet.stats.bootstrap import DEFAULT_METHOD
    assert f'95% {DEFAULT_METHOD} bootstrap intervals over the 12 test images (1000 resamples, seed 0;' in markdown
    verdicts = [line for line in lines if line.startswith('- ')]
    assert len(verdicts) == len(columns)  # one per compared model and column
    for column, line in zip(columns, verdicts):
        assert line.startswith(f'- {column}: ZF+POW-1 - ZF = ')
        assert ('(95% image-sampling interval over 12 test images, 1 training seed per model; p ' in line
                and line.endswith(('within test-image sampling', 'beyond test-image sampling'))) or (
            column == 'mCE' and 'interval undefined (some resamples have no value' in line)
    # the p-values: Holm over the columns with a p-value, as by hand; the family stated above the lines
    p = [float(v) if v else math.nan for v in table[4][2::4]]
    holm_p = [float(v) if v else math.nan for v in table[5][2::4]]
    assert holm_p == pytest.approx(holm_by_hand(p), abs=1e-4, nan_ok=True)
    m = sum(not math.isnan(v) for v in p)
    assert f'ZF+POW-1 - ZF, test-image sampling (Holm over the {m} columns of this table, family-wise level 95 %' in \
        markdown
    assert_no_model_verdict(markdown)

    from matplotlib.image import imread
    image = imread(paths['robustness_levels.png'])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05  # drawn, not a blank canvas


def clone_sweep(src_json, dst_dir, edit=None, drop_per_image=False):
    """A copy of a sweep's work dir; ``edit(key, per-image object) -> per-image object`` rewrites each cell's
    per-image file (the JSON's metrics, sha256 and size follow, as a sweep would have written them)."""
    import shutil
    from featquant_mmdet.evaluation.robustness import file_sha256
    from featquant_mmdet.stats.voc_matches import load_per_image
    shutil.copytree(osp.dirname(src_json), dst_dir, ignore=shutil.ignore_patterns('*.lock', '2026*'))
    path = osp.join(dst_dir, 'robustness.json')
    data = json.load(open(path))
    for key, cell in data['cells'].items():
        if drop_per_image:
            del cell['per_image']
            continue
        if edit is None:
            continue
        file = osp.join(dst_dir, cell['per_image']['file'])
        new = edit(key, load_per_image(file))
        new.save(file)
        for metric in cell['metrics']:
            cell['metrics'][metric] = new.with_metric(metric).value()
        cell['per_image'].update(sha256=file_sha256(file), bytes=osp.getsize(file), value=new.value())
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def compare_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('compare_robustness.py: error: ') and 'Traceback' not in err
    return err


def test_model_against_itself_is_exactly_zero(two_sweeps, tmp_path, load_tool, capsys):
    zf = two_sweeps['paths']['ZF']
    paths = load_tool('compare_robustness').main([zf, zf, '--labels', 'A', 'B', '--out-dir', str(tmp_path),
                                                  '--bootstrap', '300'])
    out = capsys.readouterr().out
    table = list(csv.reader(open(paths['robustness_table.csv'])))
    diff = table[3]
    assert diff[:2] == ['B', 'diff_to_A']
    assert [float(v) for v in diff[2:] if v not in ('', '0', '1')] == [0.0] * (len(diff[2:]) // 4 * 3)
    assert set(diff[5::4]) == {'0'}
    assert out.count('p = 1, Holm-adjusted p = 1): within test-image sampling') == 5
    assert_no_model_verdict(out)
    # --ci-method: the percentile intervals on request; an unknown method is a usage error
    paths = load_tool('compare_robustness').main([zf, zf, '--labels', 'A', 'B', '--out-dir', str(tmp_path / 'pct'),
                                                  '--bootstrap', '300', '--ci-method', 'percentile'])
    assert '95% percentile bootstrap intervals over the 12 test images (300 resamples' in open(
        paths['robustness_table.md']).read()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        load_tool('compare_robustness').main([zf, '--ci-method', 'bca'])
    assert exit_info.value.code == 2 and "argument --ci-method: invalid choice: 'bca'" in capsys.readouterr().err


def test_better_model_on_every_image_is_detected(two_sweeps, tmp_path, load_tool, capsys):
    """B: ZF's sweep with every image classified correctly in every cell; paired intervals exclude 0, marked."""
    from featquant_mmdet.stats.correctness import Correctness

    def perfect(key, cells):
        return Correctness({k: [True] * cells.num_images for k in cells.correct}, cells.image_ids, cells.metric,
                           cells.meta)

    better = clone_sweep(two_sweeps['paths']['ZF'], tmp_path / 'perfect', perfect)
    paths = load_tool('compare_robustness').main([two_sweeps['paths']['ZF'], better, '--labels', 'ZF', 'Perfect',
                                                  '--metric', 'accuracy/top1', '--out-dir', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    for column in ('Clean', 'M.Blur', 'Mix.', 'mPC'):
        assert f'- {column}: Perfect - ZF = +' in out and out.split(f'- {column}: Perfect - ZF = ')[1].split(
            '\n')[0].endswith(': beyond test-image sampling')
    assert_no_model_verdict(out)  # better on every image, but one training seed each: no model verdict
    diff_line = next(line for line in open(paths['robustness_table.md']) if line.startswith('| Perfect | +'))
    assert diff_line.count('*') >= 4
    table = list(csv.reader(open(paths['robustness_table.csv'])))
    assert table[3][5] == '1' and float(table[3][3]) > 0  # Clean: excludes 0, lower end above 0


def test_comparison_errors(two_sweeps, tmp_path, load_tool, capsys):
    main = load_tool('compare_robustness').main
    zf_path = two_sweeps['paths']['ZF']
    out = ['--out-dir', str(tmp_path)]
    err = compare_error(main, [zf_path, two_sweeps['paths']['ZF+POW-1'], '--labels', 'ZF'] + out, capsys)
    assert '1 labels for 2 results files' in err
    other_seed = dict(two_sweeps['results']['ZF'])
    other_seed['identity'] = dict(other_seed['identity'], distortion_seed=7)
    other_path = tmp_path / 'other_seed.json'
    other_path.write_text(json.dumps(other_seed))
    err = compare_error(main, [zf_path, str(other_path), '--labels', 'A', 'B'] + out, capsys)
    assert 'B: distortion_seed 7 differs from A\'s 0: the numbers are not comparable' in err
    not_results = tmp_path / 'metrics.json'
    not_results.write_text(json.dumps({'accuracy/top1': 50.0}))
    err = compare_error(main, [zf_path, str(not_results)] + out, capsys)
    assert 'metrics.json is not a robustness results file: format None' in err
    err = compare_error(main, [zf_path, '--metric', 'coco/bbox_mAP'] + out, capsys)
    assert "metric 'coco/bbox_mAP' not in its results" in err
    err = compare_error(main, [zf_path, zf_path, '--labels', 'A', 'B', '--reference', 'C'] + out, capsys)
    assert "--reference 'C' is none of the compared models" in err
    assert not osp.exists(tmp_path / 'robustness_table.md')  # nothing written on error


def test_other_test_images_or_an_old_results_file_are_errors_naming_the_file(two_sweeps, tmp_path, load_tool,
                                                                            capsys):
    from featquant_mmdet.stats.correctness import Correctness
    main = load_tool('compare_robustness').main
    zf_path = two_sweeps['paths']['ZF']
    out = ['--out-dir', str(tmp_path / 'out')]

    def reordered(key, cells):
        order = list(range(cells.num_images))[::-1]
        return Correctness({k: v[order] for k, v in cells.correct.items()}, [cells.image_ids[i] for i in order],
                           cells.metric, cells.meta)

    shuffled = clone_sweep(zf_path, tmp_path / 'reordered', reordered)
    err = compare_error(main, [zf_path, shuffled, '--labels', 'A', 'B'] + out, capsys)
    assert f'{shuffled}: the same test images in another order' in err and 'not computed on the same test set' in err

    def fewer(key, cells):
        return Correctness({k: v[:-1] for k, v in cells.correct.items()}, cells.image_ids[:-1], cells.metric,
                           cells.meta)

    subset = clone_sweep(zf_path, tmp_path / 'fewer', fewer)
    err = compare_error(main, [zf_path, subset, '--labels', 'A', 'B'] + out, capsys)
    assert f'{subset}: 11 test images instead of 12' in err

    old = clone_sweep(zf_path, tmp_path / 'old', drop_per_image=True)
    err = compare_error(main, [zf_path, old, '--labels', 'A', 'B'] + out, capsys)
    assert f'{old}: no usable per-image data for cell(s)' in err and 'rerun its sweep' in err
    assert not osp.exists(tmp_path / 'out')
    # values without intervals stay available for old files
    paths = main([zf_path, old, '--labels', 'A', 'B', '--bootstrap', '0'] + out)
    assert 'no intervals (--bootstrap 0)' in open(paths['robustness_table.md']).read()
    capsys.readouterr()


def test_level_curves_start_at_the_clean_value(two_sweeps):
    from featquant_mmdet.evaluation.robustness.report import level_curves
    results = two_sweeps['results']['ZF']
    curves = level_curves(results, METRIC)
    assert list(curves) == ['motion_blur']  # the mixture has no levels: it gets the separate mixtures panel
    xs, ys = curves['motion_blur']
    assert xs == [0, 1, 2]
    assert ys == pytest.approx([results['cells'][k]['metrics'][METRIC]
                                for k in ('clean', 'motion_blur@1', 'motion_blur@2')])


def test_markdown_and_csv_mark_missing_cells():
    from featquant_mmdet.evaluation.robustness import report
    columns = ['Clean', 'M.Blur', 'mPC', 'rPC']
    rows = [[90.0, 60.0, 60.0, 66.67], [91.0, None, 50.0, 54.95]]
    markdown = report.to_markdown(columns, rows, ['A', 'B'], METRIC)
    assert '| B | 91.00 | - | 50.00 | 54.95 |' in markdown
    assert '| B | +1.00 | - | -10.00 | -11.72 |' in markdown
    lines = list(csv.reader(io.StringIO(report.to_csv(columns, rows, ['A', 'B']))))
    assert lines[2] == ['B', 'value', '91.0000', '', '50.0000', '54.9500']


def test_table_values_are_the_json_index_and_a_hand_edit_is_warned(two_sweeps, tmp_path, load_tool, capsys):
    edited = clone_sweep(two_sweeps['paths']['ZF'], tmp_path / 'edited')
    data = json.load(open(edited))
    data['cells']['clean']['metrics'][METRIC] = 42.0
    with open(edited, 'w') as f:
        json.dump(data, f)
    paths = load_tool('compare_robustness').main([edited, '--labels', 'E', '--out-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert f'compare_robustness.py: warning: {edited}: P is 42.0 in the JSON but' in err
    table = list(csv.reader(open(paths['robustness_table.csv'])))
    assert float(table[1][2]) == 42.0


def assert_no_model_verdict(text: str) -> None:
    """A comparison of single results files (one training seed per model): no better/worse between the models, and
    it says how to get one."""
    assert not re.search(r'\b(better|worse)\b', text), text
    assert 'No verdict between the models: each has 1 training seed' in text
    assert 'tools/study.py' in text and '--train-seeds' in text


def holm_by_hand(p):
    """Holm's step-down adjusted p-values written out: sort, multiply the j-th smallest by (m - j + 1), running max,
    cap at 1; NaN entries left out."""
    defined = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m, out, running = len(defined), [math.nan] * len(p), 0.0
    for j, (v, i) in enumerate(defined):
        running = max(running, min(1.0, (m - j) * v))
        out[i] = running
    return out


def test_holm_adjustment_equals_a_hand_computation_with_ties_caps_and_undefined_p():
    from featquant_mmdet.stats.multiplicity import holm, holm_verdict
    p = [0.009, 0.04, 0.03, 0.04, 0.5, math.nan]
    # sorted: 0.009, 0.03, 0.04, 0.04, 0.5 (m = 5) -> 5 * 0.009 = 0.045, 4 * 0.03 = 0.12, 3 * 0.04 = 0.12,
    # 2 * 0.04 = 0.08 -> 0.12 (running max), 1 * 0.5 = 0.5
    expected = [0.045, 0.12, 0.12, 0.12, 0.5, math.nan]
    np_out = holm(p)
    assert list(np_out[:5]) == pytest.approx(expected[:5]) and math.isnan(np_out[5])
    assert list(np_out[:5]) == pytest.approx(holm_by_hand(p)[:5])
    assert list(holm([0.3, 0.4])) == pytest.approx([0.6, 0.6])  # monotone: the larger p keeps the running max
    assert list(holm([0.6, 0.7, 0.0])) == [1.0, 1.0, 0.0]  # capped at 1
    assert list(holm([0.02])) == [0.02]  # a family of one: unadjusted
    assert [holm_verdict(+1.0, v, 0.95) for v in np_out[:2]] == ['better', 'no detectable difference at 95%']
    assert holm_verdict(-1.0, 0.01, 0.95) == 'worse' and holm_verdict(-1.0, 0.01, 0.95, better_high=False) == 'better'
    from featquant_mmdet.stats.checks import StatsInputError
    with pytest.raises(StatsInputError, match=r'p-values must lie in \[0, 1\]'):
        holm([0.5, 1.5])


def test_missing_or_edited_per_image_files_are_refused_naming_the_file(two_sweeps, tmp_path, load_tool, capsys):
    """The per-image files must be those the results file indexes: a missing one, one changed since (size or
    sha256), and one of another test set (its hash updated, as if written by another sweep) are refused, naming it."""
    from featquant_mmdet.evaluation.robustness import file_sha256
    from featquant_mmdet.stats.correctness import Correctness
    main = load_tool('compare_robustness').main
    zf_path = two_sweeps['paths']['ZF']
    out = ['--labels', 'A', 'B', '--out-dir', str(tmp_path / 'out')]

    missing = clone_sweep(zf_path, tmp_path / 'missing')
    gone = osp.join(osp.dirname(missing), 'robustness.cells', 'mix.npz')
    __import__('os').remove(gone)
    err = compare_error(main, [zf_path, missing] + out, capsys)
    assert f'per-image file {gone} is missing' in err and f'{missing}: no usable per-image data for cell(s) [\'mix\']' \
        in err

    edited = clone_sweep(zf_path, tmp_path / 'edited')
    changed = osp.join(osp.dirname(edited), 'robustness.cells', 'clean.npz')
    with open(changed, 'ab') as f:
        f.write(b'\0')
    err = compare_error(main, [zf_path, edited] + out, capsys)
    assert f'per-image file {changed} changed since the sweep wrote it (size or sha256)' in err

    other = clone_sweep(zf_path, tmp_path / 'other_set')
    data = json.load(open(other))
    cell_file = osp.join(osp.dirname(other), data['cells']['mix']['per_image']['file'])
    from featquant_mmdet.stats.records import load_per_image
    cells = load_per_image(cell_file)
    ids = [f'other_{i}' for i in range(cells.num_images)]
    Correctness(cells.correct, ids, cells.metric, cells.meta).save(cell_file)
    data['cells']['mix']['per_image'].update(sha256=file_sha256(cell_file), bytes=osp.getsize(cell_file))
    with open(other, 'w') as f:
        json.dump(data, f)
    err = compare_error(main, [zf_path, other] + out, capsys)
    assert f'{cell_file}: cell \'mix\':' in err and 'the per-image data belong to another test set' in err
    assert not osp.exists(tmp_path / 'out')


def test_several_files_per_label_are_training_seeds_with_holm_adjusted_verdicts(two_sweeps, tmp_path, load_tool,
                                                                                 capsys):
    """--labels A A B B: each model's files are its training seeds (paired by their order); the output is the seed
    study's report (t-intervals over seeds, Holm-adjusted verdicts, the family stated), computed from the JSONs."""
    from featquant_mmdet.stats.correctness import Correctness
    import numpy as np
    zf = two_sweeps['paths']['ZF']

    def first_wrong(key, cells):
        return Correctness({k: np.r_[False, v[1:]] for k, v in cells.correct.items()}, cells.image_ids, cells.metric,
                           cells.meta)

    def perfect(key, cells):
        return Correctness({k: np.ones_like(v) for k, v in cells.correct.items()}, cells.image_ids, cells.metric,
                           cells.meta)

    seed1 = clone_sweep(zf, tmp_path / 'zf_s1', first_wrong)
    best = [clone_sweep(zf, tmp_path / f'perfect_s{s}', perfect) for s in (0, 1)]
    main = load_tool('compare_robustness').main
    paths = main([zf, seed1, *best, '--labels', 'ZF', 'ZF', 'Perfect', 'Perfect', '--out-dir', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert set(paths) == {'study.md', 'study.csv', 'study.png'}
    md = open(paths['study.md']).read()
    assert md in out and 'No verdict between the models' not in out
    assert 'Verdicts, Holm-adjusted (Holm over the 5 columns of this table, family-wise level 95 % for each variant ' \
           'against ZF' in md
    values = [json.load(open(p))['cells']['clean']['metrics'][METRIC] for p in (zf, seed1)]
    clean = next(line for line in md.splitlines() if line.startswith('- Clean: Perfect - ZF = '))
    mean = sum(100 - v for v in values) / 2
    assert clean.startswith(f'- Clean: Perfect - ZF = {mean:+.2f} [') and '(95% t-interval over 2 seeds' in clean
    assert 'Holm-adjusted p' in clean and clean.endswith(('better', 'no detectable difference at 95%'))
    # bad input: a reference that is no label, options of single-run comparisons
    err = compare_error(main, [zf, seed1, *best, '--labels', 'ZF', 'ZF', 'P', 'P', '--reference', 'X',
                               '--out-dir', str(tmp_path / 'o2')], capsys)
    assert "--reference 'X' is none of the labels (ZF, P)" in err
    err = compare_error(main, [zf, seed1, '--labels', 'ZF', 'ZF', '--metric', 'accuracy/top1'], capsys)
    assert '--ce-reference and --metric compare single runs' in err
