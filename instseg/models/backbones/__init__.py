"""Backbones: images Tensor[B, 3, H, W] -> tuple of feature maps, finest first.

Every backbone publishes ``out_channels`` and ``strides`` (the FPN's ``in_channels`` default) and
loads local pretrained files of several layouts through ``init_cfg=dict(type='Pretrained', ...)``.
"""

from instseg.models.backbones.convnext import ConvNeXt
from instseg.models.backbones.resnet import ResNet, ResNeXt
from instseg.models.backbones.swin import SwinTransformer
from instseg.models.backbones.timm_backbone import TimmBackbone

__all__ = ['ConvNeXt', 'ResNeXt', 'ResNet', 'SwinTransformer', 'TimmBackbone']
