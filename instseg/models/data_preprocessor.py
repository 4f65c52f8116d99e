"""Batch preparation on the model's device: channel order, normalisation, padding, metainfo."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmengine.model import ImgDataPreprocessor
from torch import Tensor, nn

from instseg.registry import MODELS


@MODELS.register_module()
class DetDataPreprocessor(ImgDataPreprocessor):
    """Turn the collated images of a detection batch into one normalised, padded tensor.

    mmengine's :class:`~mmengine.model.ImgDataPreprocessor` moves the data to the model's device,
    reorders channels, normalises (``(x - mean) / std``, in the channel order after conversion)
    and pads every image at the bottom and right to the batch's largest size rounded up to
    ``pad_size_divisor``. The padding happens after normalisation, so ``pad_value`` is a
    normalised value. Boxes need no change because only the bottom and right grow.

    This class then records on every data sample the metainfo mmdetection's heads read:
    ``batch_input_shape`` (the padded batch's (H, W)) and ``pad_shape`` (the sample's own
    ``img_shape`` rounded up to ``pad_size_divisor``, as in mmdetection; the area beyond it is
    padding added for other images of the batch). In training it finally applies
    ``batch_augments`` in order, each called as ``aug(inputs, data_samples)``.

    Args:
        mean, std: per-channel (3 values, or 1 for all) pixel mean and std; both None to skip
            normalisation. Defaults to None.
        pad_size_divisor: padded height and width are multiples of it. Defaults to 32.
        pad_value: value of padded pixels. Defaults to 0.
        bgr_to_rgb, rgb_to_bgr: reverse the channel order (before normalisation).
            Defaults to False.
        non_blocking: copy to the device without blocking. Defaults to False.
        batch_augments: configs of batch-level augmentations built from MODELS, each a module
            mapping ``(inputs, data_samples)`` to the same. Defaults to None.
        pad_mask, mask_pad_value: mmdetection pads ground-truth masks to the batch shape with
            ``mask_pad_value`` so that RoIs reaching into the padding see background there.
            instseg cuts mask targets per RoI from each image's compact masks and counts all
            pixels outside the image as background, which is that behaviour with
            ``mask_pad_value=0`` whether ``pad_mask`` is True or False; other pad values are
            refused. Defaults to False, 0.
        pad_seg, seg_pad_value: semantic-segmentation maps are not part of instseg's ground
            truth, so ``pad_seg=True`` is refused; ``seg_pad_value`` then pads nothing, as in
            mmdetection with ``pad_seg=False``. Defaults to False, 255.
        boxtype2tensor: instseg's boxes are always plain Tensor[N, 4], which is what True asks
            for; False (keep box-type objects) is refused. Defaults to True.
    """

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        pad_size_divisor: int = 32,
        pad_value: float = 0,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        non_blocking: bool = False,
        batch_augments: Sequence[dict] | None = None,
        pad_mask: bool = False,
        mask_pad_value: int = 0,
        pad_seg: bool = False,
        seg_pad_value: int = 255,
        boxtype2tensor: bool = True,
    ) -> None:
        refused = [
            ('mask_pad_value', mask_pad_value, mask_pad_value != 0,
             'mask targets count everything outside an image as background (0)'),
            ('pad_seg', pad_seg, pad_seg,
             'instseg has no semantic-segmentation ground truth to pad'),
            ('boxtype2tensor', boxtype2tensor, not boxtype2tensor,
             'instseg has no box-type objects: boxes are always plain Tensor[N, 4]'),
        ]  # fmt: skip
        for key, value, bad, reason in refused:
            if bad:
                raise ValueError(f'DetDataPreprocessor {key}={value!r} is not supported: {reason}')
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            non_blocking=non_blocking,
        )
        self.batch_augments = (
            nn.ModuleList(MODELS.build(cfg) for cfg in batch_augments) if batch_augments else None
        )

    def forward(self, data: dict, training: bool = False) -> dict:
        """Prepare a batch.

        Args:
            data: ``inputs``: list of Tensor[3, H_i, W_i] (any dtype, uint8 from the pipeline)
                or Tensor[B, 3, H, W]; ``data_samples``: list of ``DetDataSample`` or absent.
            training: whether to apply ``batch_augments``.

        Returns:
            ``dict(inputs=Tensor[B, 3, Hp, Wp] float32 on the model's device,
            data_samples=the same samples with metainfo set, or None)``.
        """
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError(
                f'DetDataPreprocessor expects a dict with an "inputs" key, got {type(data)}'
            )
        image_sizes = [tuple(image.shape[-2:]) for image in data['inputs']]
        data_samples = data.get('data_samples')
        if data_samples is not None and len(data_samples) != len(image_sizes):
            raise ValueError(
                f'DetDataPreprocessor got {len(image_sizes)} inputs but '
                f'{len(data_samples)} data_samples'
            )
        data = super().forward(data, training)
        inputs: Tensor = data['inputs']
        data_samples = data['data_samples']
        if data_samples is not None:
            batch_input_shape = tuple(inputs.shape[-2:])
            for sample, (height, width) in zip(data_samples, image_sizes, strict=True):
                pad_shape = (self._round_up(height), self._round_up(width))
                sample.set_metainfo(dict(batch_input_shape=batch_input_shape, pad_shape=pad_shape))
        if training and self.batch_augments is not None:
            for augment in self.batch_augments:
                inputs, data_samples = augment(inputs, data_samples)
        if inputs.device.type == 'cpu':
            # oneDNN's channels-last convolutions are faster on CPU, and the layout propagates
            # through the network from its input (about 25% off Mask R-CNN R50 inference)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return dict(inputs=inputs, data_samples=data_samples)

    def _round_up(self, size: int) -> int:
        return math.ceil(size / self.pad_size_divisor) * self.pad_size_divisor
