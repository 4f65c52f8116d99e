# Mask R-CNN, ResNet-50 FPN, for H&E nuclei (one class, up to ~1,900 small instances per
# 1000x1000 tile): smaller anchors, up to 1,000 detections per image, AdamW, mixed precision.
_base_ = [
    '../_base_/models/mask_rcnn_r50_fpn.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/schedules/schedule_3x.py',
    '../_base_/default_runtime.py',
]

num_classes = 1
# torchvision's ImageNet ResNet-50, downloaded beforehand (nothing is fetched at run time):
# https://download.pytorch.org/models/resnet50-0676ba61.pth
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/resnet50-0676ba61.pth'
        )
    ),
    # The median nucleus is ~19 px across: the smallest anchors are 16 px (32 px ones overlap it
    # with IoU ~0.3, at the RPN's min_pos_iou).
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    # Enough proposals and detections for the most crowded tiles (CocoMetric counts up to 1,000).
    train_cfg=dict(rpn_proposal=dict(nms_pre=4000, max_per_img=2000)),
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(max_per_img=1000)),
)

# float16 autocast on GPUs (bfloat16 on a CPU host), dynamic loss scale.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
)
# 20 training tiles at batch 2 are 10 iterations per epoch: warm up over the first 10 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=2)
