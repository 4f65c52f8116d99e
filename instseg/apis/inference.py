"""Building a detector from a config and checkpoint, and running it on images."""

from __future__ import annotations

import copy
import os.path as osp
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from torch import nn

from instseg.checkpoint import load_checkpoint_file
from instseg.checkpoint.load import convert_for_model
from instseg.models.test_time_augs import TiledInferenceModel
from instseg.registry import MODELS, TRANSFORMS
from instseg.structures import DetDataSample

ImageInput = str | Path | np.ndarray


def _config_name(config: Config) -> str:
    return config.filename or '<config>'


def check_checkpoint_fits(
    model: nn.Module, state_dict: dict, checkpoint: str, config: str = '<config>'
) -> None:
    """Raise ValueError when ``state_dict`` lacks weights of ``model`` or has other shapes.

    The message names the checkpoint, the config and the first few differing keys, e.g. a
    ``bbox_head.fc_cls.weight`` of shape (5, 256) against (81, 256) for another class count.
    Weights in the checkpoint that the model does not have are only warned about.
    """
    expected = model.state_dict()
    # BatchNorm's step counters do not affect inference; converted checkpoints often lack them.
    missing = [k for k in expected if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict
        and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if mismatched:
        problems.append(f'{len(mismatched)} weights differ in shape ({"; ".join(mismatched[:3])})')
    if missing:
        problems.append(f'{len(missing)} model weights are missing ({", ".join(missing[:3])})')
    if problems:
        raise ValueError(
            f'Checkpoint {checkpoint} does not fit the model of {config}: {"; ".join(problems)}. '
            'Was it trained with this config (same model, same number of classes)?'
        )
    if unexpected:
        warnings.warn(
            f'Checkpoint {checkpoint} has {len(unexpected)} weights the model of {config} does not '
            f'use ({", ".join(unexpected[:3])}); they are ignored',
            stacklevel=2,
        )


def load_detector_checkpoint(model: nn.Module, checkpoint: str, config: str = '<config>') -> dict:
    """Load ``checkpoint`` into ``model`` through instseg's safe loader after checking it fits.

    Returns the loaded checkpoint dict (its ``meta`` holds ``dataset_meta`` when trained here).
    """
    loaded = load_checkpoint_file(checkpoint, map_location='cpu')
    # torchvision, mmdetection 2.x and official-release files are converted to our keys first
    state, _ = convert_for_model(model, loaded, checkpoint)
    check_checkpoint_fits(model, state, checkpoint, config)
    model.load_state_dict(state, strict=False)
    return loaded if isinstance(loaded, dict) else {}


def _test_dataset_cfg(cfg: Config) -> dict:
    """The innermost dataset of ``test_dataloader`` (through wrappers such as RepeatDataset)."""
    if 'test_dataloader' not in cfg:
        raise KeyError(f'{_config_name(cfg)} has no test_dataloader, so no test pipeline')
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def _num_classes(model: nn.Module) -> int | None:
    # Two-stage: roi_head.bbox_head (a list for cascades); single-stage: bbox_head.
    head = getattr(getattr(model, 'roi_head', model), 'bbox_head', None)
    if isinstance(head, nn.ModuleList):
        head = head[-1]
    return getattr(head, 'num_classes', None)


def init_detector(
    config: str | Path | Config,
    checkpoint: str | None = None,
    device: str = 'cpu',
    cfg_options: dict | None = None,
) -> nn.Module:
    """Build the detector of ``config``, load ``checkpoint`` and put it in eval mode on ``device``.

    The model gets ``cfg`` (the config) and ``dataset_meta`` (``classes``, ``palette``): from the
    checkpoint's meta when it has one, else from the config's test dataset ``metainfo``, else
    numbered names. Pretrained-backbone ``init_cfg`` is ignored: nothing is downloaded.

    Raises FileNotFoundError for a missing config or checkpoint and ValueError when the
    checkpoint does not fit the config's model.
    """
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'Config file {config} does not exist')
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a file path or a Config, got {type(config).__name__}')
    else:
        config = copy.deepcopy(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if config.model.get('backbone', {}).get('init_cfg') is not None:
        config.model.backbone.init_cfg = None
    init_default_scope(config.get('default_scope', 'instseg'))
    model = revert_sync_batchnorm(MODELS.build(config.model))
    meta: dict | None = None
    if checkpoint is not None:
        loaded = load_detector_checkpoint(model, str(checkpoint), _config_name(config))
        meta = (loaded.get('meta') or {}).get('dataset_meta')
    if not meta:
        try:
            meta = dict(_test_dataset_cfg(config).get('metainfo') or {})
        except KeyError:
            meta = {}
    if not meta.get('classes'):
        num = _num_classes(model) or 0
        warnings.warn(
            f'No class names in the checkpoint or in {_config_name(config)}; using numbers',
            stacklevel=2,
        )
        meta['classes'] = tuple(str(i) for i in range(num))
    model.dataset_meta = {k.lower(): v for k, v in meta.items()}
    model.cfg = config
    model.to(device)
    model.eval()
    return model


class LoadImageFromNDArray(BaseTransform):
    """Start a pipeline from ``results['img']`` (BGR uint8 [H, W, 3] or [H, W]) instead of a
    file: sets ``img_shape`` and ``ori_shape`` and a placeholder ``img_path``."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            raise TypeError(f'expected an image array [H, W] or [H, W, C], got {type(img)}')
        results.setdefault('img_path', None)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


def build_test_pipeline(cfg: Config, from_array: bool = False) -> Compose:
    """The config's test pipeline without ``LoadAnnotations``; with ``from_array`` its
    ``LoadImageFromFile`` becomes :class:`LoadImageFromNDArray`."""
    pipeline = copy.deepcopy(list(_test_dataset_cfg(cfg).pipeline))
    pipeline = [t for t in pipeline if t.get('type') not in ('LoadAnnotations',)]
    loaders = [i for i, t in enumerate(pipeline) if t.get('type') == 'LoadImageFromFile']
    if not loaders:
        raise ValueError(
            f'The test pipeline of {_config_name(cfg)} has no LoadImageFromFile; '
            'inference needs one to read images'
        )
    transforms: list[Any] = [TRANSFORMS.build(t) for t in pipeline]
    if from_array:
        transforms[loaders[0]] = LoadImageFromNDArray()
    return Compose(transforms)


def tiled_model(model: nn.Module, tile: dict, batch_size: int = 8) -> TiledInferenceModel:
    """``model`` wrapped for sliced inference with ``tile`` = ``dict(size, overlap=128,
    merge_iou_thr=0.5, progress=True)`` and the test pipeline of ``model.cfg``."""
    unknown = set(tile) - {'size', 'overlap', 'merge_iou_thr', 'progress'}
    if 'size' not in tile or unknown:
        raise KeyError(
            f'tile takes size (required), overlap, merge_iou_thr and progress; got {sorted(tile)}'
        )
    return TiledInferenceModel(
        model,
        test_pipeline=list(_test_dataset_cfg(model.cfg).pipeline),
        tile_size=tile['size'],
        overlap=tile.get('overlap', 128),
        batch_size=batch_size,
        merge_iou_thr=tile.get('merge_iou_thr', 0.5),
        progress=tile.get('progress', True),
    )


def inference_detector(
    model: nn.Module,
    imgs: ImageInput | Sequence[ImageInput],
    batch_size: int = 8,
    tile: dict | None = None,
) -> DetDataSample | list[DetDataSample]:
    """Run ``model`` (from :func:`init_detector`) on one image or a list of images.

    Args:
        model: a detector with ``cfg``.
        imgs: an image file path, a BGR uint8 array [H, W, 3] (as ``cv2.imread`` returns it) or a
            list of them. Arrays go through the test pipeline with ``LoadImageFromNDArray``.
        batch_size: images (tiles, with ``tile``) per forward pass. Defaults to 8.
        tile: sliced inference, e.g. ``dict(size=1024, overlap=128)``: each image is cut into
            overlapping tiles read window by window (``.npy`` and uncompressed TIFF files are
            memory-mapped), tiles go through the test pipeline in batches and their detections
            are merged (see :class:`~instseg.models.test_time_augs.TiledInferenceModel`, whose
            other arguments ``merge_iou_thr`` and ``progress`` (default True) it also takes).
            Defaults to None (whole images).

    Returns:
        A :class:`DetDataSample` (or a list, for a list input) whose ``pred_instances`` hold
        ``bboxes`` [K, 4], ``scores`` [K], ``labels`` [K] and ``masks``
        (:class:`~instseg.structures.PredictedMasks`, or a BoolTensor[K, H, W] with
        ``test_cfg.rcnn.mask_format='tensor'``) at the image's size.
    """
    is_batch = isinstance(imgs, (list, tuple))
    items = list(imgs) if is_batch else [imgs]
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    if tile is not None:
        tiled = tiled_model(model, tile, batch_size)
        results = [tiled.predict_image(img) for img in items]
        return results if is_batch else results[0]
    pipelines: dict[bool, Compose] = {}
    packed = []
    for img in items:
        from_array = isinstance(img, np.ndarray)
        if not from_array:
            img = str(img)
            if not osp.isfile(img):
                raise FileNotFoundError(f'Image {img} does not exist')
        if from_array not in pipelines:
            pipelines[from_array] = build_test_pipeline(model.cfg, from_array)
        data = dict(img=img, img_id=0) if from_array else dict(img_path=img, img_id=0)
        packed.append(pipelines[from_array](data))
    results: list[DetDataSample] = []
    with torch.no_grad():
        for start in range(0, len(packed), batch_size):
            results.extend(model.test_step(pseudo_collate(packed[start : start + batch_size])))
    return results if is_batch else results[0]
