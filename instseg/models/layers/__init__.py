"""Small building blocks shared by backbones, necks and heads."""

from instseg.models.layers.conv_module import ConvModule
from instseg.models.layers.fast_nms import fast_nms
from instseg.models.layers.norm import build_norm_layer

__all__ = ['ConvModule', 'build_norm_layer', 'fast_nms']
