"""Colour transforms: they change pixel values only, never geometry or annotations."""

from __future__ import annotations

from collections.abc import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from instseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PhotoMetricDistortion(BaseTransform):
    """Random brightness, contrast, saturation, hue and channel order (mmdetection's recipe).

    Each step happens with probability 0.5, in this order: brightness (add a value drawn from
    [-brightness_delta, brightness_delta]); contrast (multiply by a value from
    ``contrast_range``), either here or after the colour steps (even odds); saturation (HSV
    channel S times a value from ``saturation_range``); hue (add a value from
    [-hue_delta, hue_delta] degrees); channel shuffle. ``img`` (H, W, 3) keeps its dtype: integer
    images are rounded and clipped to their dtype's range (mmdetection returns float32; the
    packed input stays uint8 here, a quarter of the memory).
    """

    def __init__(
        self,
        brightness_delta: int = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: int = 18,
    ) -> None:
        for name, rng in (
            ('contrast_range', contrast_range),
            ('saturation_range', saturation_range),
        ):
            if len(rng) != 2 or rng[0] > rng[1]:
                raise ValueError(f'PhotoMetricDistortion: {name} must be (low, high), got {rng!r}')
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta

    @cache_randomness
    def _random_flags(self) -> tuple:
        """All random draws of one call, in mmdetection's order."""
        rand = np.random
        flags = tuple(rand.randint(2) for _ in range(6))  # mode, then one flag per step
        values = (
            rand.uniform(-self.brightness_delta, self.brightness_delta),
            rand.uniform(self.contrast_lower, self.contrast_upper),
            rand.uniform(self.saturation_lower, self.saturation_upper),
            rand.uniform(-self.hue_delta, self.hue_delta),
            rand.permutation(3),
        )
        return flags + values

    def transform(self, results: dict) -> dict:
        """Distort ``results['img']`` (BGR, H x W x 3)."""
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f'PhotoMetricDistortion needs a 3-channel image, got shape {img.shape} '
                f'({results.get("img_path", "?")})'
            )
        (mode, bright_on, contrast_on, sat_on, hue_on, swap_on,
         delta, alpha, saturation, hue, order) = self._random_flags()  # fmt: skip
        out = img.astype(np.float32)
        if bright_on:
            out += delta
        if mode == 1 and contrast_on:
            out *= alpha
        if sat_on or hue_on:
            out = mmcv.bgr2hsv(out)
            if sat_on:
                out[..., 1] *= saturation
            if hue_on:
                out[..., 0] = (out[..., 0] + hue) % 360
            out = mmcv.hsv2bgr(out)
        if mode == 0 and contrast_on:
            out *= alpha
        if swap_on:
            out = out[..., order]
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            out = np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
        results['img'] = np.ascontiguousarray(out)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(brightness_delta={self.brightness_delta}, '
            f'contrast_range={(self.contrast_lower, self.contrast_upper)}, '
            f'saturation_range={(self.saturation_lower, self.saturation_upper)}, '
            f'hue_delta={self.hue_delta})'
        )
