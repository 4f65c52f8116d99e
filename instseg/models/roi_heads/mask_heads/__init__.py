"""Mask heads on pooled RoI features."""

from .fcn_mask_head import FCNMaskHead, paste_mask_windows, paste_masks, paste_masks_compact

__all__ = ['FCNMaskHead', 'paste_mask_windows', 'paste_masks', 'paste_masks_compact']
