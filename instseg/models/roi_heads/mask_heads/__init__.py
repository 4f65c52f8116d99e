"""Mask heads on pooled RoI features."""

from .fcn_mask_head import FCNMaskHead, paste_masks

__all__ = ['FCNMaskHead', 'paste_masks']
