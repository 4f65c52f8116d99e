# Mask R-CNN, Swin-S FPN, 36 epochs of multi-scale / crop training, mixed precision
# (mmdetection: COCO box 48.2 / mask 43.2).
_base_ = './mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'

# ImageNet-1k Swin-S from the Swin Transformer release, downloaded beforehand (nothing is fetched
# at run time): https://github.com/SwinTransformer/storage/releases/download/v1.0.0/
# swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'
model = dict(backbone=dict(depths=[2, 2, 18, 2], init_cfg=dict(checkpoint=pretrained)))

# float16 autocast on GPUs (bfloat16 on a CPU host); the loss scale starts at 512 as in the
# Swin release's fp16 recipe and adapts when gradients overflow.
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=dict(init_scale=512))
