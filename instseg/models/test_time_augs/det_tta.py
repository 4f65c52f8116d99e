"""Test-time augmentation: run a detector on several views of each image and merge the results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from instseg.models.test_time_augs.wrapped_detector import build_wrapped_detector
from instseg.registry import MODELS
from instseg.structures import DetDataSample, PredictedMasks


def flip_boxes(boxes: Tensor, shape: Sequence[int], direction: str) -> Tensor:
    """Mirror xyxy boxes [K, 4] on an image of ``shape`` (h, w) -> [K, 4]."""
    h, w = float(shape[0]), float(shape[1])
    out = boxes.clone()
    if direction in ('horizontal', 'diagonal'):
        out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    if direction in ('vertical', 'diagonal'):
        out[:, 1], out[:, 3] = h - boxes[:, 3], h - boxes[:, 1]
    if direction not in ('horizontal', 'vertical', 'diagonal'):
        raise ValueError(f'unknown flip_direction {direction!r}')
    return out


def flip_masks(masks: Tensor, direction: str) -> Tensor:
    """Mirror masks [K, H, W] ('horizontal', 'vertical' or 'diagonal') -> [K, H, W]."""
    dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}
    if direction not in dims:
        raise ValueError(f'unknown flip_direction {direction!r}')
    return masks.flip(dims[direction])


def _mask_extents(masks: Tensor) -> Tensor:
    """Tight pixel box (x0, y0, x1, y1), ends exclusive, of each mask [K, H, W] -> int64 [K, 4];
    an empty mask gets (0, 0, 0, 0)."""
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    h, w = masks.shape[-2:]
    has = rows.any(dim=1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).amin(dim=1)
    y1 = torch.where(rows, ar_h + 1, 0).amax(dim=1)
    x0 = torch.where(cols, ar_w, w).amin(dim=1)
    x1 = torch.where(cols, ar_w + 1, 0).amax(dim=1)
    ext = torch.stack([x0, y0, x1, y1], dim=1)
    ext[~has] = 0
    return ext


def vote_masks(masks: Tensor, scores: Tensor, members: Tensor, binary: bool = True) -> Tensor:
    """Score-weighted mean of the member masks of each merged detection.

    masks [K, H, W] (bool or probabilities), scores [K], members bool [M, K] (member k of
    detection m) -> [M, H, W]: bool (mean >= 0.5) when ``binary``, else the float mean. Only the
    union of the members' extents is computed.
    """
    out = torch.zeros(
        (members.size(0), *masks.shape[-2:]),
        dtype=torch.bool if binary else torch.float32,
        device=masks.device,
    )
    extents = _mask_extents(masks != 0).cpu()
    for m in range(members.size(0)):
        idx = members[m].nonzero().flatten()
        if idx.numel() == 0:
            continue
        ext = extents[idx.cpu()]
        ext = ext[ext[:, 2] > ext[:, 0]]
        if ext.numel() == 0:
            continue
        x0, y0 = ext[:, 0].min().item(), ext[:, 1].min().item()
        x1, y1 = ext[:, 2].max().item(), ext[:, 3].max().item()
        weights = scores[idx].float().clamp(min=0)
        weights = (
            weights / weights.sum()
            if weights.sum() > 0
            else torch.full_like(weights, 1.0 / len(idx))
        )
        window = (masks[idx, y0:y1, x0:x1].float() * weights[:, None, None]).sum(dim=0)
        out[m, y0:y1, x0:x1] = window >= 0.5 if binary else window
    return out


def vote_compact_masks(masks: PredictedMasks, scores: Tensor, members: Tensor) -> PredictedMasks:
    """:func:`vote_masks` for compact masks: each merged detection's vote is computed over the
    union of its members' windows and kept as a window. scores [K], members bool [M, K]."""
    windows = masks.windows
    out_windows = np.zeros((members.size(0), 4), dtype=np.int64)
    patches = []
    scores = scores.detach().float().cpu().clamp(min=0)
    for m, row in enumerate(members.cpu()):
        idx = row.nonzero().flatten().numpy()
        idx = idx[(windows[idx, 2] > windows[idx, 0]) & (windows[idx, 3] > windows[idx, 1])]
        if len(idx) == 0:
            patches.append(np.zeros(0, dtype=bool))
            continue
        x0, y0 = windows[idx, 0].min(), windows[idx, 1].min()
        x1, y1 = windows[idx, 2].max(), windows[idx, 3].max()
        weights = scores[idx].numpy()
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(idx), 1 / len(idx))
        vote = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        for k, weight in zip(idx, weights, strict=True):
            patch, px, py = masks.window(int(k))
            vote[py - y0 : py - y0 + patch.shape[0], px - x0 : px - x0 + patch.shape[1]] += (
                patch * weight
            )
        out_windows[m] = (x0, y0, x1, y1)
        patches.append(vote >= 0.5)
    return PredictedMasks.from_patches(patches, out_windows, masks.height, masks.width)


@MODELS.register_module()
class DetTTAModel(BaseTTAModel):
    """Merge a detector's predictions over test-time views (mmdetection's name and config).

    Each view's ``pred_instances`` (``bboxes`` [K, 4], ``scores`` [K], ``labels`` [K], optional
    ``masks`` [K, H, W] or :class:`PredictedMasks`, all at the original image size, as the
    detectors return them with ``rescale=True``) is flipped back using the view's ``flip`` /
    ``flip_direction``; the resize was already undone by the detector. Boxes of all views go
    through class-wise NMS (``tta_cfg.nms.iou_threshold``) and the best ``tta_cfg.max_per_img``
    are kept, as in mmdetection. Masks, which mmdetection does not merge, are a score-weighted
    vote: each kept detection's mask is the weighted mean, thresholded at 0.5, of the masks of
    every same-class detection (from any view) whose box overlaps its box by at least the NMS
    threshold; compact masks are voted over their windows only.

    Args:
        module: the detector (a config, built from instseg's registry, or a module).
        tta_cfg: ``dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)``.
        data_preprocessor: replaces the detector config's ``data_preprocessor`` when given.
    """

    def __init__(
        self,
        module: dict | nn.Module,
        tta_cfg: dict | None = None,
        data_preprocessor: dict | nn.Module | None = None,
    ) -> None:
        super().__init__(module=build_wrapped_detector(module, data_preprocessor))
        cfg = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
        cfg.update(tta_cfg or {})
        if cfg['nms'].get('type', 'nms') != 'nms' or 'iou_threshold' not in cfg['nms']:
            raise ValueError(
                f"DetTTAModel: tta_cfg.nms must be dict(type='nms', iou_threshold=...), "
                f'got {cfg["nms"]!r}'
            )
        self.tta_cfg = cfg

    def merge_preds(self, data_samples_list: Sequence[Sequence[DetDataSample]]) -> list:
        """Per image, the views' samples -> one ``DetDataSample`` with merged predictions."""
        return [self._merge_single_sample(samples) for samples in data_samples_list]

    def _merge_single_sample(self, data_samples: Sequence[DetDataSample]) -> DetDataSample:
        boxes, scores, labels, masks = [], [], [], []
        with_masks = all('masks' in s.pred_instances for s in data_samples)
        for sample in data_samples:
            pred = sample.pred_instances
            b, m = pred.bboxes, pred.get('masks') if with_masks else None
            if with_masks and not isinstance(m, (Tensor, PredictedMasks)):
                raise TypeError(
                    f'DetTTAModel merges masks given as Tensor[K, H, W] or PredictedMasks; image '
                    f'{sample.metainfo.get("img_id")} has {type(m).__name__}'
                )
            if sample.metainfo.get('flip', False):
                direction = sample.metainfo['flip_direction']
                b = flip_boxes(b, sample.metainfo['ori_shape'], direction)
                if isinstance(m, PredictedMasks):
                    m = m.flip(direction)
                elif with_masks:
                    m = flip_masks(m, direction)
            boxes.append(b)
            scores.append(pred.scores)
            labels.append(pred.labels)
            masks.append(m)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)

        merged = data_samples[0]
        iou_thr = float(self.tta_cfg['nms']['iou_threshold'])
        keep = batched_nms(boxes.float(), scores.float(), labels, iou_thr)
        keep = keep[: self.tta_cfg['max_per_img']]
        result = InstanceData(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])
        if with_masks:
            members = (box_iou(boxes[keep].float(), boxes.float()) >= iou_thr) & (
                labels[keep, None] == labels[None, :]
            )
            if all(isinstance(m, PredictedMasks) for m in masks):
                result.masks = vote_compact_masks(masks[0].cat(masks), scores, members)
            else:
                all_masks = torch.cat(
                    [
                        m.to_tensor(boxes.device) if isinstance(m, PredictedMasks) else m
                        for m in masks
                    ]
                )
                result.masks = vote_masks(
                    all_masks, scores, members, binary=all_masks.dtype == torch.bool
                )
        merged.pred_instances = result
        # The merged detections are in the unflipped original image.
        merged.set_metainfo(dict(flip=False, flip_direction=None))
        return merged
