# The Swin-T Cascade Mask R-CNN recipe in mixed precision with a static loss scale of 512.
_base_ = './cascade_mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512.0)
