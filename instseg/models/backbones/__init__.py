"""Backbones: images Tensor[B, 3, H, W] -> tuple of feature maps, finest first."""

from instseg.models.backbones.resnet import ResNet, ResNeXt

__all__ = ['ResNeXt', 'ResNet']
