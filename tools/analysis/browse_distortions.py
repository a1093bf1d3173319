"""Every distortion x level on one sheet, like the paper's Figure 3.

    python tools/analysis/browse_distortions.py IMAGE --out distortions.png
    python tools/analysis/browse_distortions.py IMAGE --out sheet.png --names motion_blur jpeg --width 320 --seed 1
    python tools/analysis/browse_distortions.py IMAGE --out sheet.png \
        --saliency-classifier configs/pretrain/resnet18_imagenet.py --saliency-checkpoint r18.pth --label 207 \
        --input-size 224

One row per distortion (columns: clean, level 1-4) and a last row with the mixtures (Mix., Mix.Minor, Mix.Heavy).
Targeted occlusion needs the classifier whose saliency it follows (``--saliency-classifier``, ``--saliency-checkpoint``,
``--label``); without one its row is left out. The draws are those of ``Distort`` for this image file and seed.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.engine.cli import add_saliency_args, quiet_warnings, saliency_classifier  # noqa: E402

CAPTION_PX = 22


EXAMPLES = """examples:
  python tools/analysis/browse_distortions.py IMAGE --out distortions.png
  python tools/analysis/browse_distortions.py IMAGE --out sheet.png --names motion_blur jpeg --width 320 --seed 1
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw every distortion x level of one image on one sheet',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('image', help='image file (any format OpenCV reads)')
    parser.add_argument('--out', required=True, help='output image file, e.g. distortions.png')
    parser.add_argument('--names', nargs='+', default=None, help='distortions to draw (default: all)')
    parser.add_argument('--seed', type=int, default=0, help='global distortion seed (as --distortion-seed)')
    parser.add_argument('--width', type=int, default=240, help='width of each thumbnail in pixels')
    add_saliency_args(parser)
    parser.add_argument('--label', type=int, help='ground-truth class of the image, for targeted_occlusion')
    parser.add_argument('--input-size', type=int, default=None,
                        help='resize to this square size before the classifier (fixed-size models)')
    args = parser.parse_args(argv)
    if args.width < 32:
        parser.error(f'--width must be >= 32, got {args.width}')
    args.saliency = saliency_classifier(parser, args)
    if args.saliency and args.label is None:
        parser.error('--saliency-classifier needs --label (the ground-truth class the occlusion targets)')
    return args


def _cell(img, caption, width):
    import cv2
    import numpy as np
    h = max(1, round(img.shape[0] * width / img.shape[1]))
    thumb = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
    bar = np.full((CAPTION_PX, width, 3), 255, np.uint8)
    cv2.putText(bar, caption, (4, CAPTION_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([thumb, bar])


def distortion_sheet(img, image_path, names, seed=0, width=240, distort_kwargs=None):
    """The sheet as a BGR uint8 array: one row per name in ``names`` (levels 0-4), then the mixtures' row."""
    import numpy as np
    from featquant_mmdet.distortions import levels
    from featquant_mmdet.distortions.transforms import Distort

    occlusion_kwargs = dict(distort_kwargs or {})
    label = occlusion_kwargs.pop('label', None)

    def distorted(name, level):
        kwargs = occlusion_kwargs if name in levels.NEEDS_SALIENCY else {}
        results = dict(img=img.copy(), img_path=image_path, gt_label=label)
        return Distort(name, level, seed=seed, **kwargs)(results)['img']

    rows = []
    for name in names:
        if name in levels.MIXTURE_NAMES:
            continue
        title = levels.DISPLAY_NAMES.get(name, name)
        rows.append([_cell(img, 'clean', width)] +
                    [_cell(distorted(name, k), f'{title} level {k}', width)
                     for k in range(1, levels.NUM_LEVELS + 1)])
    mixtures = [n for n in names if n in levels.MIXTURE_NAMES]
    if mixtures:
        row = [_cell(img, 'clean', width)] + [_cell(distorted(n, None), levels.DISPLAY_NAMES.get(n, n), width)
                                              for n in mixtures]
        rows.append(row)
    columns = max(len(r) for r in rows)
    blank = np.full_like(rows[0][0], 255)
    return np.vstack([np.hstack(r + [blank] * (columns - len(r))) for r in rows])


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    import cv2
    from featquant_mmdet.distortions import levels

    img = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'cannot read image {args.image!r}')
    names = list(args.names or levels.ALL_NAMES)
    for name in names:
        try:
            levels.check_name(name)
        except ValueError as e:
            raise SystemExit(str(e))
    distort_kwargs = None
    if args.saliency:
        distort_kwargs = dict(classifier=args.saliency['config'], checkpoint=args.saliency['checkpoint'],
                              label=args.label, input_size=args.input_size)
    elif 'targeted_occlusion' in names:
        names.remove('targeted_occlusion')
        print('note: targeted_occlusion left out (it needs --saliency-classifier, --saliency-checkpoint, --label)')
    if not names:
        raise SystemExit('nothing to draw')
    sheet = distortion_sheet(img, args.image, names, args.seed, args.width, distort_kwargs)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if not cv2.imwrite(args.out, sheet):
        raise SystemExit(f'cannot write {args.out!r} (is the extension an image format, e.g. .png?)')
    print(f'wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})')
    return args.out


if __name__ == '__main__':
    main()
