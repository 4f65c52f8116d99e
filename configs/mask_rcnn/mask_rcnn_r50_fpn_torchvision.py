# Mask R-CNN R50-FPN set up as torchvision's maskrcnn_resnet50_fpn, so that its weights give
# torchvision's detections:
#   tools/model_converters/convert_checkpoint.py maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth tv.pth
#   tools/test.py configs/mask_rcnn/mask_rcnn_r50_fpn_torchvision.py tv.pth
# (or set load_from to the torchvision file: it is converted while loading). The differences
# from mmdetection's defaults are pinned in instseg/checkpoint/convert/conventions.py; the 80
# classes are the used COCO categories (the converter drops torchvision's 10 unused outputs).
# Images are still resized by mmcv (cv2) rather than torchvision's torch bilinear resize.
_base_ = './mask_rcnn_r50_fpn_1x_coco.py'

roi_align = dict(type='RoIAlign', sampling_ratio=2, aligned=False)
model = dict(
    # torchvision: RGB in [0, 1], ImageNet mean/std -> BGR->RGB and mean/std x 255 here.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True
    ),
    rpn_head=dict(
        # torchvision rounds its base anchors to integers.
        anchor_generator=dict(round_base_anchors=True),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
    ),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(roi_align, output_size=7)),
        # torchvision BoxCoder weights (10, 10, 5, 5) = target_stds (0.1, 0.1, 0.2, 0.2).
        bbox_head=dict(
            bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
        ),
        mask_roi_extractor=dict(roi_layer=dict(roi_align, output_size=14)),
    ),
    # Training keeps mmdetection's assigners and samplers (torchvision's thresholds and batch
    # sizes are the same); torchvision keeps 2000 proposals per image for training.
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=2000, min_bbox_size=1e-3)),
    test_cfg=dict(
        # Per level: the top 1000 anchors; after NMS at 0.7 the best 1000 of all levels.
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(iou_threshold=0.7), min_bbox_size=1e-3),
        rcnn=dict(
            score_thr=0.05,
            nms=dict(iou_threshold=0.5),
            max_per_img=100,
            mask_thr_binary=0.5,
            mask_paste='torchvision',  # grown boxes, integer pixels (see paste_masks)
        ),
    ),
)
