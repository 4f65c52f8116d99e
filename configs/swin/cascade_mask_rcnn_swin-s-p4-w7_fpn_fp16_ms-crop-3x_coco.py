# Swin-S Cascade Mask R-CNN (COCO box 51.9 / mask 45.0), mixed precision, static loss scale 512.
_base_ = './cascade_mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py'

# ImageNet-1k Swin-S weights (swin_small_patch4_window7_224.pth from the Swin Transformer
# release), downloaded beforehand: nothing is fetched at run time.
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'
model = dict(
    backbone=dict(depths=[2, 2, 18, 2], init_cfg=dict(type='Pretrained', checkpoint=pretrained))
)
