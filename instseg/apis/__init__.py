"""High-level use of a trained detector: build it from a config and checkpoint, run it."""

from __future__ import annotations

from .inference import (
    LoadImageFromNDArray,
    build_test_pipeline,
    check_checkpoint_fits,
    inference_detector,
    init_detector,
    load_detector_checkpoint,
    tiled_model,
)

__all__ = [
    'LoadImageFromNDArray',
    'build_test_pipeline',
    'check_checkpoint_fits',
    'inference_detector',
    'init_detector',
    'load_detector_checkpoint',
    'tiled_model',
]
