# Reproduces mmdetection 3.3.0's config of this path (Apache-2.0), written from memory for
# compatibility testing: instseg must run it unchanged.
_base_ = ['../common/ms-poly_3x_coco-instance.py', '../_base_/models/mask-rcnn_r50_fpn.py']
