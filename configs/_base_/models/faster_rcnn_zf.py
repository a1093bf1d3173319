# Faster R-CNN with a ZF backbone, following py-faster-rcnn's ZF end2end model (models/pascal_voc/ZF/
# faster_rcnn_end2end + experiments/cfgs/faster_rcnn_end2end.yml). One feature map at stride 16 (conv5), no FPN.
# Where mmdet has no exact equivalent the closest setting is used and the comment says so.
model = dict(
    type='FasterRCNN',
    # py-faster-rcnn subtracts the BGR pixel mean and does not scale; batches of one image need no padding
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[102.9801, 115.9465, 122.7717],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=1),
    # No init_cfg: Kaiming init of the convs (training from scratch). To start backbone and RoI-head fc6/fc7 from a
    # ZF classifier checkpoint (configs/pretrain/zf*_imagenet.py), as the paper does: the *_imagenet_init.py configs
    # (mmdet's Pretrained init, no conversion step). The backbone alone:
    #   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=CKPT
    #                 model.backbone.init_cfg.prefix=backbone.
    # Quantizing convs: quant=dict(conv_cfg=dict(type='PowConv'), include=('conv3', 'conv4', 'conv5')) (ZF-POW-1).
    # (Neither key is set to None here: mmengine cannot merge a dict from a child config or --cfg-options into None.)
    backbone=dict(type='ZF', out_indices=(4, ), frozen_stages=-1, norm_eval=False),
    neck=None,
    rpn_head=dict(
        type='RPNHead',
        in_channels=256,
        feat_channels=256,  # rpn_conv/3x3: 256 channels + ReLU
        anchor_generator=dict(
            type='AnchorGenerator',
            scales=[8, 16, 32],
            ratios=[0.5, 1.0, 2.0],
            strides=[16],
            # anchors centred in each 16x16 cell like py-faster-rcnn's [0, 15] base box; mmdet does not round
            # the anchor sides to whole pixels as generate_anchors.py does (e.g. 181x91 instead of 184x96)
            center_offset=0.5),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        # 2-way softmax objectness as py-faster-rcnn's rpn_cls_score
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        # rpn_loss_bbox is SmoothL1 with sigma 3, i.e. beta = 1 / sigma^2
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            # SingleRoIExtractor whose RoIPool (Caffe's, via torchvision) also runs on CPU, unlike mmcv's
            type='PortableSingleRoIExtractor',
            roi_layer=dict(type='RoIPool', output_size=6),  # roi_pool_conv5: 6x6 max pooling at 1/16
            out_channels=256,
            featmap_strides=[16]),
        bbox_head=dict(
            type='DropoutShared2FCBBoxHead',  # fc6, fc7 (4096, ReLU, dropout 0.5): shared_fcs.0, shared_fcs.1
            dropout_ratio=0.5,
            in_channels=256,
            fc_out_channels=4096,
            roi_feat_size=6,
            num_classes=20,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2]),  # BBOX_NORMALIZE_STDS
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),  # loss_bbox: sigma 1
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                # py-faster-rcnn makes the best anchors of every gt positive whatever their IoU; mmdet's test is
                # IoU >= min_pos_iou, and 0 would also take every zero-IoU anchor of a gt that no anchor overlaps
                min_pos_iou=1e-6,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=0,  # anchors crossing the image border are not trained (RPN _allowed_border = 0)
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=12000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.7),
            # py-faster-rcnn drops proposals under 16 px of the *original* image (16 * im_scale after resizing);
            # mmdet measures them on the resized image
            min_bbox_size=16),
        rcnn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,  # FG_THRESH
                neg_iou_thr=0.5,  # background: IoU in [BG_THRESH_LO = 0.0, BG_THRESH_HI = 0.5)
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=6000, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=16),
        # test_net.py: score threshold 0.05, per-class NMS 0.3, at most 100 detections per image
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.3), max_per_img=100)))
