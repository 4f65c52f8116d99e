# Mask R-CNN R50-FPN v2 set up as torchvision's maskrcnn_resnet50_fpn_v2 (Li et al., 2021
# "Benchmarking detection transfer learning with vision transformers"): BatchNorm in the FPN,
# two convs in the RPN head, a 4-conv + 1-fc box head and a mask head, both with BatchNorm.
# Everything else (normalisation, anchors, RoIAlign, thresholds) is as in the v1 config.
_base_ = './mask_rcnn_r50_fpn_torchvision.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=dict(norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg),
    ),
)
