"""Dense (per-anchor) heads."""

from .rpn_head import RPNHead

__all__ = ['RPNHead']
