"""What every detector is made of: the data preprocessor, backbone and neck, the mode switch.

Functions rather than a base class, so that a detector stays two levels below mmengine's
``BaseModel`` (``TwoStageDetector`` -> ``MaskRCNN``) while the two families share this code.
"""

from __future__ import annotations

import copy

from mmengine.model import BaseModel
from torch import Tensor, nn

from instseg.registry import MODELS
from instseg.structures.det_data_sample import SampleList


def build_data_preprocessor(cfg: dict | nn.Module | None) -> nn.Module | None:
    """A ``data_preprocessor`` dict built from instseg's registry (so it resolves without a
    default scope being set); a module or None is returned as it is."""
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


def build_backbone_and_neck(
    backbone: dict, neck: dict | None
) -> tuple[nn.Module, nn.Module | None]:
    """The backbone and the optional neck; the neck's ``in_channels`` defaults to the
    backbone's published ``out_channels``."""
    backbone = MODELS.build(backbone)
    if neck is None:
        return backbone, None
    neck = copy.deepcopy(neck)
    if neck.get('in_channels') is None:
        neck['in_channels'] = list(backbone.out_channels)
    return backbone, MODELS.build(neck)


def build_head(cfg: dict, train_cfg: dict | None, test_cfg: dict | None) -> nn.Module:
    """A head from a copy of ``cfg`` with the given ``train_cfg`` and ``test_cfg``."""
    cfg = copy.deepcopy(cfg)
    cfg.update(train_cfg=train_cfg, test_cfg=test_cfg)
    return MODELS.build(cfg)


def extract_features(detector: BaseModel, inputs: Tensor) -> tuple[Tensor, ...]:
    """Images [B, 3, H, W] -> ``detector.backbone`` then ``detector.neck`` (when it has one):
    multi-level features, finest first."""
    x = detector.backbone(inputs)
    return detector.neck(x) if detector.neck is not None else x


def run_mode(
    detector: BaseModel, inputs: Tensor, data_samples: SampleList | None, mode: str
) -> dict[str, Tensor] | SampleList | tuple:
    """mmengine's ``forward``: ``mode`` 'loss', 'predict' or 'tensor' calls the detector's
    ``loss``, ``predict`` or ``_forward``."""
    if mode == 'loss':
        return detector.loss(inputs, data_samples)
    if mode == 'predict':
        return detector.predict(inputs, data_samples)
    if mode == 'tensor':
        return detector._forward(inputs, data_samples)
    raise ValueError(f"Invalid mode {mode!r}; use 'loss', 'predict' or 'tensor'")
