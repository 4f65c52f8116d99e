"""Necks: backbone feature maps -> multi-level feature maps for the heads."""

from instseg.models.necks.fpn import FPN

__all__ = ['FPN']
