"""Check a classifier checkpoint against a detector config, strictly (keys and shapes), and optionally write the
partial detector state dict it hands over.

    # the check only: does the classifier fit the detector's backbone (and, for ZF, its RoI head's fc6/fc7)?
    python tools/convert_classifier_to_backbone.py work_dirs/zf_pow1_imagenet/epoch_90.pth \
        --config configs/faster_rcnn_zf_pow1_voc.py
    # and write the converted weights (for load_from=OUT)
    python tools/convert_classifier_to_backbone.py work_dirs/zf_pow1_imagenet/epoch_90.pth OUT.pth \
        --config configs/faster_rcnn_zf_pow1_voc.py

No conversion is needed to train: a detector config starts from the classifier checkpoint itself through mmdet's
``init_cfg=dict(type='Pretrained', checkpoint=CLASSIFIER, prefix='backbone.')`` (and, for ZF, a ``Pretrained``
init with ``prefix='head.'`` on the RoI box head; see ``featquant_mmdet.models.classifiers.handoff`` and
``configs/faster_rcnn_zf_pow1_voc_imagenet_init.py``). That loading only *warns* about missing, unexpected or
misshaped keys; this tool lists them and fails. The converted file holds the classifier's ``backbone.*`` weights
and, for a ZF classifier, its fc6/fc7 under the RoI head's names ``roi_head.bbox_head.shared_fcs.0/1``: one
``load_from=OUT`` loads both.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402
from featquant_mmdet.models.classifiers.handoff import (  # noqa: E402
    BACKBONE_PREFIX, StateDictMismatchError, convert_classifier_checkpoint)


EXAMPLES = """examples:
  # the check only: does the classifier fit the detector's backbone (and, for ZF, its RoI head's fc6/fc7)?
  python tools/convert_classifier_to_backbone.py work_dirs/zf_pow1_imagenet/epoch_90.pth \
      --config configs/faster_rcnn_zf_pow1_voc.py
  # and write the converted weights (for load_from=OUT.pth)
  python tools/convert_classifier_to_backbone.py work_dirs/zf_pow1_imagenet/epoch_90.pth OUT.pth \
      --config configs/faster_rcnn_zf_pow1_voc.py
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description='Check a classifier checkpoint against a detector config (keys and shapes) and/or convert it '
                    'into detector weights')
    parser.add_argument('src', help='classifier checkpoint (tools/train.py on a configs/pretrain/ config)')
    parser.add_argument('dst', nargs='?', help='output file (.pth); without it the checkpoint is only checked')
    parser.add_argument('--config', help='detector config to check the keys and shapes against')
    parser.add_argument('--backbone-only', action='store_true',
                        help='do not hand the ZF head fc6/fc7 over to the RoI head')
    args = parser.parse_args(argv)
    if args.dst is None and args.config is None:
        parser.error('give an output file (dst), a detector config to check against (--config), or both')
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    if not osp.isfile(args.src):
        raise SystemExit(f'classifier checkpoint not found: {args.src}')
    if args.config is not None and not osp.isfile(args.config):
        raise SystemExit(f'detector config not found: {args.config}')
    try:
        converted = convert_classifier_checkpoint(args.src, args.dst, detector_config=args.config,
                                                  fc_handoff=() if args.backbone_only else None)
    except (StateDictMismatchError, TypeError, KeyError) as err:
        raise SystemExit(f'cannot hand {args.src} over: {err}')
    num_backbone = sum(k.startswith(BACKBONE_PREFIX) for k in converted)
    others = sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith(BACKBONE_PREFIX)})
    what = f'{num_backbone} backbone tensors' + (f', handed over {others}' if others else '')
    if args.dst is not None:
        print(f'saved {args.dst}: {what}' + (f'; checked against {args.config}' if args.config else ''))
    else:
        print(f'{args.src} fits {args.config}: {what}')
    return converted


if __name__ == '__main__':
    main()
