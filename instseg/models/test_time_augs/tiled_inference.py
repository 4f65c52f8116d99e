"""Sliced inference: run a detector on overlapping tiles of a large image and merge the tiles."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import nn

from instseg.datasets.large_image import LargeImage
from instseg.models.test_time_augs.wrapped_detector import build_wrapped_detector
from instseg.registry import MODELS, TRANSFORMS
from instseg.structures import DetDataSample, PredictedMasks
from instseg.structures.tile_merge import merge_tile_detections
from instseg.structures.tiles import as_tile_size, tile_windows


def tile_pipeline(test_pipeline: Sequence[dict]) -> Compose:
    """A test pipeline for tiles handed over as arrays: its ``LoadImageFromFile`` and
    ``LoadAnnotations`` are dropped (the tile is the image, ground truth is not needed)."""
    names = [t.get('type') for t in test_pipeline]
    if 'LoadImageFromFile' not in names:
        raise ValueError(
            f'tiled inference needs a test pipeline with LoadImageFromFile, got {names}'
        )
    kept = [
        t for t in test_pipeline if t.get('type') not in ('LoadImageFromFile', 'LoadAnnotations')
    ]
    return Compose([TRANSFORMS.build(copy.deepcopy(t)) for t in kept])


@MODELS.register_module()
class TiledInferenceModel(BaseTTAModel):
    """Predict images tile by tile with a detector; detections come back in image coordinates,
    duplicates across tile borders merged (:func:`merge_tile_detections`) and masks stitched into
    one :class:`PredictedMasks` on the whole image (image-size RLE through ``to_rle()``).

    Images are read window by window (:class:`~instseg.datasets.large_image.LargeImage`), so a
    16,000 x 16,000 image never becomes one tensor; memory grows with one batch of tiles plus the
    detections' box areas.

    Args:
        module: the detector (config or module).
        test_pipeline: the detector's test pipeline (transform configs); each tile runs through
            it without its ``LoadImageFromFile`` / ``LoadAnnotations``.
        tile_size: tile (h, w) or one int. Defaults to 1024.
        overlap: pixels shared by neighbouring tiles; make it larger than the objects, so each
            is whole in some tile. Defaults to 128.
        batch_size: tiles per forward pass. Defaults to 4.
        merge_iou_thr: intersection over the smaller mask at which detections of two tiles are
            one object. Defaults to 0.5.
        progress: show a progress bar over each image's tiles. Defaults to False.
    """

    def __init__(
        self,
        module: dict | nn.Module,
        test_pipeline: Sequence[dict],
        tile_size: int | tuple[int, int] = 1024,
        overlap: int = 128,
        batch_size: int = 4,
        merge_iou_thr: float = 0.5,
        progress: bool = False,
        data_preprocessor: dict | None = None,
    ) -> None:
        super().__init__(module=build_wrapped_detector(module, data_preprocessor))
        self.tile_size = as_tile_size(tile_size, 'tile size')
        tile_windows(*self.tile_size, self.tile_size, overlap)  # checks overlap < tile size
        if batch_size < 1:
            raise ValueError(f'tile batch_size must be >= 1, got {batch_size}')
        if not 0.0 < merge_iou_thr <= 1.0:
            raise ValueError(f'merge_iou_thr must be in (0, 1], got {merge_iou_thr!r}')
        self.overlap = int(overlap)
        self.batch_size = int(batch_size)
        self.merge_iou_thr = float(merge_iou_thr)
        self.progress = progress
        self.pipeline = tile_pipeline(test_pipeline)

    def predict_image(
        self, image: str | Path | np.ndarray | LargeImage, metainfo: dict | None = None
    ) -> DetDataSample:
        """One image (path, BGR array or :class:`LargeImage`) -> a ``DetDataSample`` whose
        ``pred_instances`` cover the whole image; metainfo gets ``ori_shape``, ``img_shape`` and
        ``tiles`` (the number of tiles)."""
        source = image if isinstance(image, LargeImage) else LargeImage(image)
        windows = tile_windows(source.height, source.width, self.tile_size, self.overlap)
        samples: list[DetDataSample] = []
        with _progress(self.progress, len(windows), source.path) as advance:
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                packed = [self._pack(source, window) for window in batch]
                with torch.no_grad():
                    samples.extend(self.module.test_step(pseudo_collate(packed)))
                advance(len(batch))
        merged = self.merge_preds([samples])[0]
        merged.set_metainfo(dict(metainfo or {}))
        merged.set_metainfo(
            dict(
                img_path=source.path,
                ori_shape=(source.height, source.width),
                img_shape=(source.height, source.width),
                tiles=len(windows),
            )
        )
        return merged

    def _pack(self, source: LargeImage, window: np.ndarray) -> dict:
        tile = source.read(window)
        results = dict(
            img=tile,
            img_id=0,
            img_path=source.path,
            img_shape=tile.shape[:2],
            ori_shape=tile.shape[:2],
        )
        packed = self.pipeline(results)
        packed['data_samples'].set_metainfo(
            dict(tile=window, canvas_shape=(source.height, source.width))
        )
        return packed

    def merge_preds(self, data_samples_list: Sequence[Sequence[DetDataSample]]) -> list:
        """Per image, its tiles' samples (metainfo ``tile`` (x0, y0, x1, y1) and
        ``canvas_shape``) -> one ``DetDataSample`` with the merged detections."""
        return [self._merge_tiles(samples) for samples in data_samples_list]

    def _merge_tiles(self, samples: Sequence[DetDataSample]) -> DetDataSample:
        height, width = samples[0].metainfo['canvas_shape']
        windows = np.stack([np.asarray(s.metainfo['tile'], dtype=np.int64) for s in samples])
        with_masks = all('masks' in s.pred_instances for s in samples)
        boxes, scores, labels, masks, tile_ids = [], [], [], [], []
        for t, sample in enumerate(samples):
            pred = sample.pred_instances
            x0, y0 = int(windows[t, 0]), int(windows[t, 1])
            boxes.append(pred.bboxes.detach().float().cpu() + torch.tensor([x0, y0, x0, y0]))
            scores.append(pred.scores.detach().float().cpu())
            labels.append(pred.labels.detach().cpu())
            tile_ids.append(np.full(len(pred), t, dtype=np.int64))
            if with_masks:
                tile_masks = pred.masks
                if not isinstance(tile_masks, PredictedMasks):
                    tile_masks = PredictedMasks.from_dense(tile_masks)
                masks.append(tile_masks.translate(x0, y0, height, width))
        detections = InstanceData(
            bboxes=torch.cat(boxes), scores=torch.cat(scores), labels=torch.cat(labels)
        )
        if with_masks:
            detections.masks = masks[0].cat(masks)
        merged = DetDataSample()
        merged.pred_instances = merge_tile_detections(
            detections, np.concatenate(tile_ids), windows, self.merge_iou_thr
        )
        return merged

    def test_step(self, data: dict) -> list[DetDataSample]:
        """A test batch whose samples carry ``img_path`` (images are read here, tile by tile;
        ``inputs`` are not used) -> one merged sample per image, with the batch's metainfo."""
        out = []
        for sample in data['data_samples']:
            if sample.metainfo.get('img_path') is None:
                raise KeyError('TiledInferenceModel: test samples need img_path in their metainfo')
            merged = self.predict_image(sample.img_path, sample.metainfo)
            out.append(merged)
        return out


class _progress:
    """A rich progress bar over tiles (a no-op when disabled); yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, name: str | None) -> None:
        self.enabled, self.total, self.name = enabled, total, name

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._bar = Progress()
        self._bar.start()
        task = self._bar.add_task(
            f'tiles of {Path(self.name).name if self.name else "image"}', total=self.total
        )
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.stop()
