# Mask R-CNN, ResNeXt-101 32x4d FPN, 12 epochs (mmdetection: COCO box 41.9 / mask 37.5).
_base_ = './mask_rcnn_r50_fpn_1x_coco.py'

# ImageNet ResNeXt-101 32x4d in torchvision's key layout, downloaded beforehand (nothing is
# fetched at run time): OpenMMLab's resnext101_32x4d-a5af3160.pth (mmdetection's
# 'open-mmlab://resnext101_32x4d') or timm's resnext101_32x4d model.safetensors.
model = dict(
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/resnext101_32x4d-a5af3160.pth'
        ),
    )
)
