# Mask R-CNN, ResNet-101 FPN, 12 epochs (mmdetection: COCO box 40.0 / mask 36.1).
_base_ = './mask_rcnn_r50_fpn_1x_coco.py'

# torchvision's ImageNet ResNet-101, downloaded beforehand (nothing is fetched at run time):
# https://download.pytorch.org/models/resnet101-63fe2227.pth
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/resnet101-63fe2227.pth'
        ),
    )
)
