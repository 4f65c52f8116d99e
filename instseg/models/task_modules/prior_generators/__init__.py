"""Prior (anchor) generators."""

from __future__ import annotations

from .anchor_generator import AnchorGenerator

__all__ = ['AnchorGenerator']
