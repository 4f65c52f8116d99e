# A small YOLACT (ResNet-18 FPN, trained from scratch) on the generated shapes of the Mask R-CNN
# demo, with its data, optimiser and schedule, so the two compare on equal terms
# (tools/analysis_tools/benchmarks/yolact.py).
_base_ = ['./mask_rcnn_r18_fpn_demo.py']

channels = 64  # FPN and head width; 256 in the full-size model
num_classes = 4
model = dict(
    _delete_=True,
    type='YOLACT',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    # No pretrained weights (nothing is downloaded): BatchNorm trains, nothing is frozen.
    backbone=dict(
        type='ResNet',
        depth=18,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None,
    ),
    neck=dict(
        type='FPN',
        in_channels=None,  # follows the backbone
        out_channels=channels,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5,
        upsample_cfg=dict(mode='bilinear'),
    ),
    bbox_head=dict(
        type='YOLACTHead',
        num_classes=num_classes,
        in_channels=channels,
        feat_channels=channels,
        # The shapes are 40-100 px long: anchors of 16-256 px, centred in their cells.
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=2,
            scales_per_octave=1,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
            center_offset=0.5,
        ),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]
        ),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, reduction='none'),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.5),
        num_head_convs=1,
        num_protos=32,
        use_ohem=True,
    ),
    mask_head=dict(
        type='YOLACTProtonet',
        in_channels=channels,
        proto_channels=(channels, channels, channels, None, channels, 32),
        num_protos=32,
        num_classes=num_classes,
        max_masks_to_train=100,
        loss_mask_weight=6.125,
        with_seg_branch=True,
        loss_segm=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
    ),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0.0,
            ignore_iof_thr=-1,
            gt_max_assign_all=False,
        ),
        sampler=dict(type='PseudoSampler'),
        neg_pos_ratio=3,
    ),
    # at most 8 objects per image: 30 detections, as in the Mask R-CNN demo
    test_cfg=dict(
        nms_pre=1000, score_thr=0.05, iou_thr=0.5, top_k=200, max_per_img=30, mask_thr_binary=0.5
    ),
)
