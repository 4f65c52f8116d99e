"""YOLACT's mask branch: prototypes from the finest FPN level, assembled by per-detection
coefficients, cropped by box; plus the semantic-segmentation branch that helps it train."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from instseg.registry import MODELS
from instseg.structures.bbox import clip_boxes, scale_boxes
from instseg.structures.det_data_sample import SampleList


def assemble_masks(prototypes: Tensor, coeffs: Tensor) -> Tensor:
    """Linear combination of prototypes through a sigmoid: prototypes [P, H, W] and
    coefficients [N, P] -> fp32 mask probabilities [N, H, W]."""
    logits = torch.einsum('phw,np->nhw', prototypes.float(), coeffs.float())
    return logits.sigmoid()


def crop_masks(masks: Tensor, boxes: Tensor, padding: float = 1.0) -> Tensor:
    """Zero every pixel of ``masks[k]`` (Tensor[N, H, W]) outside ``boxes[k]`` (Tensor[N, 4] xyxy
    in the masks' pixel coordinates) grown by ``padding`` pixels on each side.

    Pixel ``(i, j)`` stays when ``x1 - padding <= j < x2 + padding`` and likewise for ``i``.
    """
    h, w = masks.shape[-2:]
    x1 = (torch.minimum(boxes[:, 0], boxes[:, 2]) - padding).clamp(min=0)
    x2 = (torch.maximum(boxes[:, 0], boxes[:, 2]) + padding).clamp(max=w)
    y1 = (torch.minimum(boxes[:, 1], boxes[:, 3]) - padding).clamp(min=0)
    y2 = (torch.maximum(boxes[:, 1], boxes[:, 3]) + padding).clamp(max=h)
    cols = torch.arange(w, device=masks.device, dtype=boxes.dtype)
    rows = torch.arange(h, device=masks.device, dtype=boxes.dtype)
    in_x = (cols[None] >= x1[:, None]) & (cols[None] < x2[:, None])  # [N, W]
    in_y = (rows[None] >= y1[:, None]) & (rows[None] < y2[:, None])  # [N, H]
    return masks * (in_y[:, :, None] & in_x[:, None, :]).to(masks.dtype)


def _input_to_grid(boxes: Tensor, grid_hw: tuple[int, int], input_hw: tuple[int, int]) -> Tensor:
    """Boxes in network-input pixels -> pixels of a map of ``grid_hw`` covering ``input_hw``."""
    sy, sx = grid_hw[0] / input_hw[0], grid_hw[1] / input_hw[1]
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


@MODELS.register_module()
class SegmentationModule(BaseModule):
    """YOLACT's semantic-segmentation branch (training only): a 1x1 conv ``segm_conv`` mapping the
    finest FPN level [B, C_in, H, W] to per-class logits [B, num_classes, H, W]."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        init_cfg: dict | None = dict(  # noqa: B006
            type='Xavier', distribution='uniform', override=dict(name='segm_conv')
        ),
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.segm_conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C_in, H, W] -> [B, num_classes, H, W] logits."""
        return self.segm_conv(x)


@MODELS.register_module()
class YOLACTProtonet(BaseModule):
    """Prototype network on the finest FPN level, with mmdetection's layout (``protonet.{i}``).

    ``proto_channels`` / ``proto_kernel_sizes`` list the layers: a positive kernel size is a conv
    with that kernel (padding ``k // 2``), a kernel of ``-s`` with channels ``None`` a bilinear
    ``s``-times upsampling; each layer is followed by a ReLU (the last one only with
    ``include_last_relu``). The default gives 32 prototypes at twice the P3 resolution.

    Training: the positives' coefficients assemble masks that are cropped to their ground-truth
    box (grown by a pixel) and scored by per-pixel BCE against the ground truth cut from the
    compact mask container at the prototype resolution; each mask's loss is its pixel mean
    divided by its box's area as a fraction of the image (the paper's normalisation), summed,
    times ``loss_mask_weight``, over the positives of the batch (at most ``max_masks_to_train``
    per image, drawn at random). With ``with_seg_branch``, ``segm_branch`` adds ``loss_segm``:
    sigmoid BCE of per-class logits on P3 against the union of each class's ground-truth masks.

    Inference: prototypes x coefficients -> sigmoid -> crop by the detected box -> bilinear
    resampling to the original image -> ``test_cfg.mask_thr_binary``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        proto_channels: tuple = (256, 256, 256, None, 256, 32),
        proto_kernel_sizes: tuple = (3, 3, 3, -2, 3, 1),
        include_last_relu: bool = True,
        num_protos: int = 32,
        loss_mask_weight: float = 1.0,
        max_masks_to_train: int = 100,
        with_seg_branch: bool = True,
        loss_segm: dict = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),  # noqa: B006
        train_cfg: ConfigDict | dict | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | None = dict(  # noqa: B006
            type='Xavier', distribution='uniform', override=dict(name='protonet')
        ),
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(proto_channels) != len(proto_kernel_sizes):
            raise ValueError(
                f'YOLACTProtonet: {len(proto_channels)} proto_channels for '
                f'{len(proto_kernel_sizes)} proto_kernel_sizes'
            )
        if proto_channels[-1] != num_protos:
            raise ValueError(
                f'YOLACTProtonet: the last of proto_channels ({proto_channels[-1]}) must equal '
                f'num_protos ({num_protos})'
            )
        if test_cfg is not None and 'mask_thr' in test_cfg:
            if test_cfg['mask_thr'] != test_cfg.get('mask_thr_binary', 0.5):
                raise ValueError(
                    "YOLACT test_cfg: 'mask_thr' is read as mmdetection's configs carry it, equal "
                    f"to 'mask_thr_binary'; got {test_cfg['mask_thr']} and "
                    f'{test_cfg.get("mask_thr_binary", 0.5)}'
                )
        self.num_classes = num_classes
        self.num_protos = num_protos
        self.loss_mask_weight = loss_mask_weight
        self.max_masks_to_train = max_masks_to_train
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        layers: list[nn.Module] = []
        channels = in_channels
        for out, kernel in zip(proto_channels, proto_kernel_sizes, strict=True):
            if kernel > 0:
                layers.append(nn.Conv2d(channels, out, kernel, padding=kernel // 2))
                channels = out
            elif out is None:
                layers.append(nn.Upsample(scale_factor=-kernel, mode='bilinear'))
            else:
                raise ValueError(
                    f'YOLACTProtonet: a negative kernel size ({kernel}) is an upsampling and '
                    f'needs channels None, got {out}'
                )
            layers.append(nn.ReLU(inplace=True))
        if not include_last_relu:
            layers.pop()
        self.protonet = nn.Sequential(*layers)
        self.segm_branch = None
        if with_seg_branch:
            self.segm_branch = SegmentationModule(num_classes, in_channels)
            self.loss_segm = MODELS.build(loss_segm)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
        """Prototypes [B, num_protos, H', W'] from ``x[0]`` and, when training with the
        segmentation branch, semantic logits [B, num_classes, H, W] (else None)."""
        segm = self.segm_branch(x[0]) if self.segm_branch is not None and self.training else None
        return self.protonet(x[0]), segm

    # ----------------------------------------------------------------------------- training
    def loss(
        self,
        x: tuple[Tensor, ...],
        batch_data_samples: SampleList,
        positive_infos: list[InstanceData],
    ) -> dict[str, Tensor]:
        """``loss_mask`` (and ``loss_segm``) from the positives of :class:`YOLACTHead`."""
        prototypes, segm_logits = self(x)
        input_hw = tuple(batch_data_samples[0].metainfo['batch_input_shape'])
        proto_hw = tuple(prototypes.shape[-2:])
        mask_losses, num_pos = [], 0
        segm_losses = []
        for i, (sample, pos) in enumerate(zip(batch_data_samples, positive_infos, strict=True)):
            gt = sample.gt_instances
            if segm_logits is not None:
                segm_losses.append(self._segm_loss(segm_logits, i, gt, input_hw))
            inds, gt_boxes, coeffs = pos.pos_assigned_gt_inds, pos.bboxes, pos.coeffs
            if inds.numel() == 0:
                continue
            if inds.numel() > self.max_masks_to_train:
                pick = torch.randperm(inds.numel(), device=inds.device)[: self.max_masks_to_train]
                inds, gt_boxes, coeffs = inds[pick], gt_boxes[pick], coeffs[pick]
            targets = _mask_targets(gt.masks, proto_hw, input_hw, prototypes.device)[inds]
            probs = assemble_masks(prototypes[i], coeffs)
            probs = crop_masks(probs, _input_to_grid(gt_boxes.float(), proto_hw, input_hw))
            # BCE on probabilities (pixels cropped away have p = 0) with log clamped at -100,
            # written out because F.binary_cross_entropy refuses to run under autocast.
            p = probs.clamp(0, 1)
            bce = -(
                targets * p.log().clamp(min=-100) + (1 - targets) * (1 - p).log().clamp(min=-100)
            )
            img_h, img_w = sample.metainfo['img_shape'][:2]
            box_area = (
                (gt_boxes[:, 2] - gt_boxes[:, 0])
                / img_w
                * ((gt_boxes[:, 3] - gt_boxes[:, 1]) / img_h)
            ).float()
            mask_losses.append((bce.mean(dim=(1, 2)) / box_area.clamp(min=1e-6)).sum())
            num_pos += inds.numel()
        if mask_losses:
            loss_mask = torch.stack(mask_losses).sum() * self.loss_mask_weight / num_pos
        else:
            loss_mask = prototypes.sum() * 0.0 + sum(p.coeffs.sum() * 0.0 for p in positive_infos)
        losses = {'loss_mask': loss_mask}
        if segm_logits is not None:
            losses['loss_segm'] = torch.stack(segm_losses).sum()
        return losses

    def _segm_loss(self, segm_logits: Tensor, i: int, gt: InstanceData, input_hw: tuple) -> Tensor:
        """Sigmoid BCE of image ``i``'s class logits [C, h, w] against each class's mask union,
        averaged over the batch's pixels (mmdetection's ``avg_factor``)."""
        num_imgs, _, h, w = segm_logits.shape
        target = segm_logits.new_zeros(segm_logits.shape[1:], dtype=torch.float32)
        if len(gt) > 0:
            masks = _mask_targets(gt.masks, (h, w), input_hw, segm_logits.device)
            labels = gt.labels.to(segm_logits.device)
            for c in labels.unique().tolist():
                target[c] = masks[labels == c].amax(dim=0)
        return self.loss_segm(segm_logits[i], target, avg_factor=num_imgs * h * w)

    # ----------------------------------------------------------------------------- inference
    def predict(
        self,
        x: tuple[Tensor, ...],
        results: list[InstanceData],
        batch_data_samples: SampleList,
        rescale: bool = True,
    ) -> list[InstanceData]:
        """Add ``masks`` (BoolTensor[N, H, W]) to detections in network-input pixels; with
        ``rescale`` boxes and masks move to the original image (``ori_shape``), else they stay
        at ``img_shape``. ``coeffs`` are dropped."""
        prototypes, _ = self(x)
        threshold = self.test_cfg.get('mask_thr_binary', 0.5)
        input_hw = tuple(batch_data_samples[0].metainfo['batch_input_shape'])
        proto_hw = tuple(prototypes.shape[-2:])
        out = []
        for protos, res, sample in zip(prototypes, results, batch_data_samples, strict=True):
            meta = sample.metainfo
            probs = assemble_masks(protos, res.coeffs)
            probs = crop_masks(probs, _input_to_grid(res.bboxes.float(), proto_hw, input_hw))
            bboxes = res.bboxes
            scale = (1.0, 1.0)
            shape = meta['img_shape'][:2]
            if rescale and 'scale_factor' in meta:
                scale = meta['scale_factor']
                shape = meta['ori_shape'][:2]
                bboxes = clip_boxes(scale_boxes(bboxes, (1 / scale[0], 1 / scale[1])), shape)
            masks = _resample(probs, shape, scale, input_hw) > threshold
            out.append(
                InstanceData(
                    bboxes=bboxes, scores=res.scores, labels=res.labels, masks=masks.bool()
                )
            )
        return out


def _resample(
    probs: Tensor,
    out_hw: tuple[int, int],
    scale: tuple[float, float],
    input_hw: tuple[int, int],
) -> Tensor:
    """Bilinear resampling of maps [N, h, w] covering the network input onto an image of
    ``out_hw`` whose pixel (x, y) sits at input pixel (x * scale_w, y * scale_h) -> [N, H, W]."""
    n = probs.size(0)
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    if n == 0:
        return probs.new_zeros((0, out_h, out_w))
    # Output pixel centre -> input pixels -> the map's normalised coordinates (with
    # align_corners=False, -1 and 1 are the outer edges of the map, which spans the input).
    xs = (torch.arange(out_w, device=probs.device, dtype=torch.float32) + 0.5) * scale[0]
    ys = (torch.arange(out_h, device=probs.device, dtype=torch.float32) + 0.5) * scale[1]
    gx = xs / input_hw[1] * 2 - 1
    gy = ys / input_hw[0] * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing='ij')[::-1], dim=-1)
    return F.grid_sample(
        probs[:, None], grid[None].expand(n, -1, -1, -1), mode='bilinear', align_corners=False
    )[:, 0]


def _mask_targets(
    masks, out_hw: tuple[int, int], input_hw: tuple[int, int], device: torch.device
) -> Tensor:
    """Every ground-truth mask resampled onto a map of ``out_hw`` covering the network input
    ``input_hw``, binarised at 0.5 -> float Tensor[G, h, w] (straight from the compact
    container: no full-size tensor per instance)."""
    num = len(masks)
    box = torch.tensor([[0.0, 0.0, float(input_hw[1]), float(input_hw[0])]]).expand(num, 4)
    return masks.crop_and_resize(box, out_hw, torch.arange(num), device=device)
