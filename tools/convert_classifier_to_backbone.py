"""Turn an ImageNet classifier checkpoint into the weights a detector starts from.

    python tools/convert_classifier_to_backbone.py work_dirs/zf_pow1_imagenet/epoch_90.pth \
        checkpoints/zf_pow1_imagenet.pth --config configs/faster_rcnn_zf_pow1_voc.py

The output holds the classifier's ``backbone.*`` weights and, for a ZF classifier, its fc6/fc7 renamed to the RoI
head's ``roi_head.bbox_head.shared_fcs.0/1``. A detector config loads it with
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` (and, for ZF, a
``Pretrained`` init with ``prefix='roi_head.bbox_head.'`` on the bbox head, see
``featquant_mmdet.models.classifiers.handoff.bbox_head_init_cfg``), or all at once with ``load_from=OUT``. With
``--config`` the converted keys and shapes are checked against that detector first, and any missing / unexpected
/ misshaped key is listed (mmengine's loading itself only warns).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402
from featquant_mmdet.models.classifiers.handoff import (  # noqa: E402
    BACKBONE_PREFIX, StateDictMismatchError, convert_classifier_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert a classifier checkpoint into detector backbone weights')
    parser.add_argument('src', help='classifier checkpoint (tools/train.py on a configs/pretrain/ config)')
    parser.add_argument('dst', help='output file (.pth)')
    parser.add_argument('--config', help='detector config to check the converted keys and shapes against')
    parser.add_argument('--backbone-only', action='store_true',
                        help='do not hand the ZF head fc6/fc7 over to the RoI head')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    if not osp.isfile(args.src):
        raise SystemExit(f'classifier checkpoint not found: {args.src}')
    try:
        converted = convert_classifier_checkpoint(args.src, args.dst, detector_config=args.config,
                                                  fc_handoff=() if args.backbone_only else None)
    except (StateDictMismatchError, TypeError) as err:
        raise SystemExit(f'cannot convert {args.src}: {err}')
    num_backbone = sum(k.startswith(BACKBONE_PREFIX) for k in converted)
    others = sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith(BACKBONE_PREFIX)})
    print(f'saved {args.dst}: {num_backbone} backbone tensors' + (f', handed over {others}' if others else '')
          + (f'; checked against {args.config}' if args.config else ''))
    return converted


if __name__ == '__main__':
    main()
