"""Figure 5 of the paper: detections of several models on clean and distorted versions of a few test images.

    python tools/analysis/detection_sheet.py \
        --config configs/faster_rcnn_zf_voc.py configs/faster_rcnn_zf_pow1_voc.py \
        --checkpoint work_dirs/zf/iter_70000.pth work_dirs/zf_pow1/iter_70000.pth --labels ZF ZF+POW-1 \
        --out detection_sheet.png [--num-images 3 | --images A.jpg B.jpg] [--versions clean mix_minor mix_heavy] \
        [--seed 0] [--score-thr 0.5] [--tile-size 320 240] [--cfg-options test_dataloader.dataset.data_root=...]

Rows: the image versions (Original, Mix.Minor, Mix.Heavy by default; also NAME@LEVEL such as motion_blur@3);
columns: each image with each model side by side. Distortions are drawn with the robustness evaluation's seeding
(``--seed`` = ``tools/robustness.py --seed``), so the sheet shows the very images the table scored. Give the same
``--cfg-options`` as to the evaluation (data root, test scale).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402


EXAMPLES = """examples:
  python tools/analysis/detection_sheet.py \
      --config configs/faster_rcnn_zf_voc.py configs/faster_rcnn_zf_pow1_voc.py \
      --checkpoint work_dirs/zf/iter_70000.pth work_dirs/zf_pow1/iter_70000.pth --labels ZF ZF+POW-1 \
      --out detection_sheet.png --num-images 3
"""


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Detections on clean and distorted images, models side by side',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('--config', nargs='+', required=True, help='detector config of each model')
    parser.add_argument('--checkpoint', nargs='+', required=True, help='checkpoint of each model (same order)')
    parser.add_argument('--labels', nargs='+', default=None, help='column label of each model (default: config names)')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument('--images', nargs='+', default=None, help='image files (default: the first test images)')
    parser.add_argument('--num-images', type=int, default=2, help='how many test images without --images')
    parser.add_argument('--versions', nargs='+', default=['clean', 'mix_minor', 'mix_heavy'],
                        help='rows: clean, a mixture or NAME@LEVEL (default: clean mix_minor mix_heavy)')
    parser.add_argument('--seed', type=int, default=0, help='distortion seed (tools/robustness.py --seed)')
    parser.add_argument('--score-thr', type=float, default=0.5, help='draw detections with at least this score')
    parser.add_argument('--tile-size', type=int, nargs=2, default=(320, 240), metavar=('WIDTH', 'HEIGHT'))
    parser.add_argument('--device', default=None, help='torch device (default: cuda:0 when available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, e.g. test_dataloader.dataset.data_root=DIR')
    args = parser.parse_args(argv)
    if len(args.checkpoint) != len(args.config):
        parser.error(f'{len(args.config)} configs but {len(args.checkpoint)} checkpoints: give one checkpoint per '
                     'config')
    if args.labels is None:
        args.labels = [osp.splitext(osp.basename(c))[0] for c in args.config]
    if len(args.labels) != len(args.config):
        parser.error(f'{len(args.config)} configs but {len(args.labels)} labels: give one label per config')
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if args.seed < 0:
        parser.error(f'--seed must be a non-negative integer, got {args.seed}')
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    from featquant_mmdet.analysis.detection_sheet import make_detection_sheet
    out_dir = osp.dirname(osp.abspath(args.out))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise SystemExit(f'detection_sheet.py: error: cannot create the output folder {out_dir}: {err}')
    if not os.access(out_dir, os.W_OK):
        raise SystemExit(f'detection_sheet.py: error: the output folder {out_dir} is not writable')
    try:
        info = make_detection_sheet(list(zip(args.labels, args.config, args.checkpoint)), args.out,
                                    image_paths=args.images, num_images=args.num_images, versions=args.versions,
                                    seed=args.seed, score_thr=args.score_thr, tile_size=tuple(args.tile_size),
                                    cfg_options=args.cfg_options, device=args.device)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f'detection_sheet.py: error: {err}')
    print(f'detection sheet: {info["out_file"]} ({info["size"][0]}x{info["size"][1]} px), '
          f'{len(info["images"])} images x {len(info["labels"])} models x {len(info["versions"])} versions')
    for version, per_image in zip(info['versions'], info['detections']):
        print(f'  {version:<12} detections with score >= {args.score_thr}: ' + ', '.join(
            f'{osp.basename(path)}: ' + '/'.join(str(n) for n in counts)
            for path, counts in zip(info['images'], per_image)) + f'  ({"/".join(info["labels"])})')
    return info


if __name__ == '__main__':
    main()
