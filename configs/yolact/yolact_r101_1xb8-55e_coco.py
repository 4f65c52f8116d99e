# YOLACT with a ResNet-101 FPN on COCO: the R50 recipe with a deeper backbone.
_base_ = './yolact_r50_1xb8-55e_coco.py'

model = dict(backbone=dict(depth=101))
