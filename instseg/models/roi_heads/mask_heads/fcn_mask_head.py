"""Per-RoI mask prediction (mmdetection's FCNMaskHead) and pasting masks back into the image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from instseg.models.layers import ConvModule
from instseg.models.task_modules import SamplingResult
from instseg.ops import conv_transpose2d
from instseg.registry import MODELS
from instseg.structures.masks import BaseInstanceMasks
from instseg.structures.predicted_masks import PredictedMasks


@MODELS.register_module()
class FCNMaskHead(BaseModule):
    """``num_convs`` 3x3 convs, a 2x up-sampling and a 1x1 classifier.
    [K, C, 14, 14] -> [K, n, 28, 28].

    ``n`` is ``num_classes`` (one mask per class, the RoI's label picks one) or 1 when
    ``class_agnostic``. Targets are cut per positive RoI from the compact gt masks
    (``masks.crop_and_resize``), never from full-image bitmaps.
    """

    def __init__(
        self,
        num_convs: int = 4,
        roi_feat_size: int = 14,
        in_channels: int = 256,
        conv_kernel_size: int = 3,
        conv_out_channels: int = 256,
        num_classes: int = 80,
        class_agnostic: bool = False,
        # The dict defaults (mmdetection's signature) are only read: the builders copy them.
        upsample_cfg: dict = dict(type='deconv', scale_factor=2),  # noqa: B006
        norm_cfg: dict | None = None,
        loss_mask: dict = dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0),  # noqa: B006
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.roi_feat_size = roi_feat_size
        self.convs = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else conv_out_channels,
                conv_out_channels,
                conv_kernel_size,
                padding=conv_kernel_size // 2,
                norm_cfg=norm_cfg,
            )
            for i in range(num_convs)
        )
        channels = conv_out_channels if num_convs else in_channels
        upsample_cfg = dict(upsample_cfg)
        up_type = upsample_cfg.pop('type', 'deconv')
        scale = upsample_cfg.pop('scale_factor', 2)
        if up_type == 'deconv':
            self.upsample = nn.ConvTranspose2d(channels, channels, scale, stride=scale)
        elif up_type in ('nearest', 'bilinear'):
            self.upsample = nn.Upsample(scale_factor=scale, mode=up_type)
        elif up_type is None:
            self.upsample, scale = None, 1
        else:
            raise KeyError(f"upsample_cfg type {up_type!r}; use 'deconv', 'nearest' or 'bilinear'")
        self.scale_factor = scale
        self.relu = nn.ReLU(inplace=True)
        self.conv_logits = nn.Conv2d(channels, 1 if class_agnostic else num_classes, 1)
        self.loss_mask = MODELS.build(loss_mask)

    def init_weights(self) -> None:
        super().init_weights()
        for module in (self.upsample, self.conv_logits):
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(module.bias)

    @property
    def mask_size(self) -> int:
        return self.roi_feat_size * self.scale_factor

    def _mask_features(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        if isinstance(self.upsample, nn.ConvTranspose2d):
            # built above with no padding, groups or dilation: only the stride differs from 1
            up = self.upsample
            x = self.relu(conv_transpose2d(x, up.weight, up.bias, up.stride))
        elif self.upsample is not None:
            x = self.upsample(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """RoI features [K, C, S, S] -> mask logits [K, n, S * scale, S * scale]."""
        return self.conv_logits(self._mask_features(x))

    def predict_probs(self, x: Tensor, labels: Tensor) -> Tensor:
        """RoI features [K, C, S, S] and labels [K] -> fp32 probabilities [K, s, s] of each
        RoI's own class; the same as ``select_class(forward(x), labels)``.

        ``conv_logits`` is 1x1, so each RoI's logit map is one dot product with its class's
        weights: computing only those skips the other ``num_classes - 1`` maps.
        """
        feats = self._mask_features(x)
        idx = torch.zeros_like(labels) if self.class_agnostic else labels
        weight = self.conv_logits.weight[idx, :, 0, 0].to(feats.dtype)
        logits = torch.einsum('kchw,kc->khw', feats, weight)
        return (logits.float() + self.conv_logits.bias[idx, None, None].float()).sigmoid()

    def get_targets(
        self,
        sampling_results: list[SamplingResult],
        batch_gt_masks: list[BaseInstanceMasks],
        size: int,
    ) -> Tensor:
        """Binary targets [P, size, size] for the positive RoIs of all images, in sampling order."""
        targets = [
            gt_masks.crop_and_resize(
                res.pos_priors.detach().float(),
                (size, size),
                res.pos_assigned_gt_inds,
                device=res.pos_priors.device,
            )
            for res, gt_masks in zip(sampling_results, batch_gt_masks, strict=True)
        ]
        return torch.cat(targets) if targets else torch.zeros((0, size, size))

    def loss(
        self,
        mask_preds: Tensor,
        sampling_results: list[SamplingResult],
        batch_gt_masks: list[BaseInstanceMasks],
    ) -> Tensor:
        """Per-pixel binary cross-entropy on the channel of each positive RoI's label."""
        if mask_preds.size(0) == 0:
            return mask_preds.sum() * 0.0
        targets = self.get_targets(sampling_results, batch_gt_masks, mask_preds.size(-1))
        labels = torch.cat([res.pos_gt_labels for res in sampling_results])
        if self.class_agnostic:
            labels = torch.zeros_like(labels)
        return self.loss_mask(mask_preds, targets.to(mask_preds.device), labels)

    def select_class(self, mask_preds: Tensor, labels: Tensor) -> Tensor:
        """Probabilities of each RoI's own class. [K, n, s, s], [K] -> [K, s, s] in fp32."""
        probs = mask_preds.float().sigmoid()
        if self.class_agnostic:
            return probs[:, 0]
        return probs[torch.arange(probs.size(0), device=probs.device), labels]


def paste_masks(
    masks: Tensor,
    boxes: Tensor,
    img_shape: tuple[int, int],
    threshold: float = 0.5,
    mode: str = 'grid_sample',
) -> Tensor:
    """Paste RoI mask probabilities into a full image.

    masks [K, s, s] in [0, 1], boxes [K, 4] in the target image's pixels -> BoolTensor[K, H, W];
    pixels outside a detection's window (see :func:`paste_mask_windows`) are False. With
    ``threshold < 0`` the soft probabilities are returned as float instead.
    """
    height, width = int(img_shape[0]), int(img_shape[1])
    soft = threshold < 0
    windows, patches = paste_mask_windows(masks, boxes, (height, width), mode)
    out = torch.zeros(
        (masks.size(0), height, width),
        dtype=torch.float32 if soft else torch.bool,
        device=masks.device,
    )
    for i, (x0, y0, x1, y1) in enumerate(windows.tolist()):
        if x1 > x0 and y1 > y0:
            out[i, y0:y1, x0:x1] = patches[i] if soft else patches[i] >= threshold
    return out


def paste_masks_compact(
    masks: Tensor,
    boxes: Tensor,
    img_shape: tuple[int, int],
    threshold: float = 0.5,
    mode: str = 'grid_sample',
) -> PredictedMasks:
    """:func:`paste_masks` without the [K, H, W] canvas: each detection's binary mask is kept
    inside its window only (memory of the boxes' area). masks [K, s, s], boxes [K, 4]."""
    if threshold < 0:
        raise ValueError(
            f'compact masks are binary; mask_thr_binary={threshold} (soft masks) needs '
            "test_cfg.rcnn.mask_format='tensor'"
        )
    windows, patches = paste_mask_windows(masks, boxes, img_shape, mode)
    return PredictedMasks.from_patches(
        [p >= threshold for p in patches], windows, int(img_shape[0]), int(img_shape[1])
    )


def paste_mask_windows(
    masks: Tensor, boxes: Tensor, img_shape: tuple[int, int], mode: str = 'grid_sample'
) -> tuple[Tensor, list[Tensor]]:
    """Resample each RoI mask onto the image pixels its box covers.

    masks [K, s, s] in [0, 1], boxes [K, 4] -> (windows int64 [K, 4] (x0, y0, x1, y1) on the
    CPU, ends exclusive, inside the image; K fp32 patches [y1 - y0, x1 - x0]). The cost grows
    with the boxes' area, not K x H x W.

    ``mode='grid_sample'``: the window is the box rounded outwards and the mask is sampled
    bilinearly at pixel centres (+0.5). ``mode='torchvision'`` reproduces torchvision's
    ``paste_masks_in_image`` (see :func:`paste_masks_like_torchvision`).
    """
    height, width = int(img_shape[0]), int(img_shape[1])
    if mode == 'torchvision':
        return _torchvision_windows(masks, boxes, height, width)
    if mode != 'grid_sample':
        raise ValueError(f"paste_masks mode must be 'grid_sample' or 'torchvision', got {mode!r}")
    boxes = boxes.float()
    # Integer extents of each box, computed once on the CPU to avoid a device sync per mask.
    windows = (
        torch.stack(
            [
                boxes[:, 0].floor().clamp(0, width),
                boxes[:, 1].floor().clamp(0, height),
                boxes[:, 2].ceil().clamp(0, width),
                boxes[:, 3].ceil().clamp(0, height),
            ],
            dim=1,
        )
        .long()
        .cpu()
    )
    windows[:, 2:] = torch.maximum(windows[:, 2:], windows[:, :2])
    masks = masks.float()[:, None]
    patches = []
    for i, (x0, y0, x1, y1) in enumerate(windows.tolist()):
        if x1 <= x0 or y1 <= y0:
            patches.append(masks.new_zeros((y1 - y0, x1 - x0)))
            continue
        bx1, by1, bx2, by2 = boxes[i]
        xs = torch.arange(x0, x1, device=masks.device, dtype=torch.float32) + 0.5 - bx1
        ys = torch.arange(y0, y1, device=masks.device, dtype=torch.float32) + 0.5 - by1
        xs = xs / (bx2 - bx1).clamp(min=1e-6) * 2 - 1
        ys = ys / (by2 - by1).clamp(min=1e-6) * 2 - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing='ij')[::-1], dim=-1)[None]
        patches.append(F.grid_sample(masks[i : i + 1], grid, align_corners=False)[0, 0])
    return windows, patches


def paste_masks_like_torchvision(masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
    """torchvision's mask pasting: masks [K, s, s], boxes [K, 4] -> probabilities [K, H, W] (fp32).

    Each mask gets a one-pixel border of zeros and its box grows by ``(s + 2) / s`` about its
    centre to match; the grown box is truncated to integer pixels with inclusive ends
    (``x2 - x1 + 1`` wide) and the mask resized bilinearly onto it. This shifts masks by up to a
    pixel relative to :func:`paste_masks`; use it only to reproduce torchvision's outputs.
    """
    return paste_masks(masks, boxes, (height, width), threshold=-1, mode='torchvision')


def _torchvision_windows(
    masks: Tensor, boxes: Tensor, height: int, width: int
) -> tuple[Tensor, list[Tensor]]:
    """:func:`paste_mask_windows` for ``mode='torchvision'``."""
    windows = torch.zeros((masks.size(0), 4), dtype=torch.long)
    if masks.size(0) == 0:
        return windows, []
    size = masks.size(-1)
    padded = F.pad(masks.float(), (1, 1, 1, 1))[:, None]
    boxes = boxes.float()
    centre = (boxes[:, 2:] + boxes[:, :2]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * ((size + 2) / size)
    # int64 conversion truncates toward zero, as torchvision's does.
    corners = torch.cat([centre - half, centre + half], dim=1).long().cpu().tolist()
    patches = []
    for i, (x0, y0, x1, y1) in enumerate(corners):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if ix1 <= ix0 or iy1 <= iy0:
            patches.append(masks.new_zeros((0, 0), dtype=torch.float32))
            continue
        patch = F.interpolate(padded[i : i + 1], size=(h, w), mode='bilinear', align_corners=False)
        windows[i] = torch.tensor([ix0, iy0, ix1, iy1])
        patches.append(patch[0, 0, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0])
    return windows, patches
