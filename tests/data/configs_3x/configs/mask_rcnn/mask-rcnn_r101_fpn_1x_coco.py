# Reproduces mmdetection 3.3.0's config of this path (Apache-2.0), written from memory for
# compatibility testing: instseg must run it unchanged.
_base_ = './mask-rcnn_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101'))
)
