"""instseg: config-driven instance segmentation on mmengine, timm and torchvision."""

from . import checkpoint, engine  # noqa: F401  (routes checkpoint loading through the safe loader)

__version__ = '0.1.0'
