"""Transforms made of transforms: random choice of sub-pipelines, test-time augmentation.

mmcv's wrappers build their members from mmcv's registry, which outside instseg's default scope
gives mmcv's own ``Resize`` and friends: those move the image but leave the masks behind. These
subclasses build every member from instseg's registry, whatever scope is current.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from mmcv.transforms import Compose
from mmcv.transforms import RandomChoice as MMCVRandomChoice
from mmcv.transforms import TestTimeAug as MMCVTestTimeAug

from instseg.registry import TRANSFORMS

TransformLike = dict | Callable[[dict], dict | None]


def build_transform(cfg: TransformLike) -> Callable[[dict], dict | None]:
    """A transform from a config dict (instseg's registry) or an already built callable."""
    if isinstance(cfg, dict):
        return TRANSFORMS.build(cfg)
    if callable(cfg):
        return cfg
    raise TypeError(f'a transform must be a config dict or a callable, got {type(cfg).__name__}')


def build_pipeline(cfgs: TransformLike | Sequence[TransformLike]) -> Compose:
    """A :class:`mmcv.transforms.Compose` of transforms built by :func:`build_transform`."""
    if isinstance(cfgs, dict) or callable(cfgs):
        cfgs = [cfgs]
    return Compose([build_transform(cfg) for cfg in cfgs])


@TRANSFORMS.register_module()
class RandomChoice(MMCVRandomChoice):
    """Apply one sub-pipeline of ``transforms``, drawn with probabilities ``prob``.

    Args:
        transforms: the candidates, each a transform config or a list of them.
        prob: one probability per candidate, summing to 1. Defaults to uniform.
    """

    def __init__(
        self,
        transforms: Sequence[TransformLike | Sequence[TransformLike]],
        prob: Sequence[float] | None = None,
    ) -> None:
        if len(transforms) == 0:
            raise ValueError(f'{type(self).__name__}: transforms must list at least one candidate')
        if prob is not None:
            prob = [float(p) for p in prob]
            if len(prob) != len(transforms):
                raise ValueError(
                    f'{type(self).__name__}: {len(transforms)} candidates but {len(prob)} '
                    f'probabilities'
                )
            if min(prob) < 0 or not math.isclose(sum(prob), 1.0, abs_tol=1e-6):
                raise ValueError(
                    f'{type(self).__name__}: prob must be non-negative and sum to 1, got {prob}'
                )
        self.prob = prob
        self.transforms = [build_pipeline(candidate) for candidate in transforms]


@TRANSFORMS.register_module()
class AutoAugment(RandomChoice):
    """mmdetection's name for :class:`RandomChoice` over ``policies`` (lists of transforms),
    as in the Swin recipes: ``AutoAugment(policies=[[multi-scale resize],
    [resize, crop, resize]])``. Unlike mmdetection there is no default policy set (its
    ImageNet policies need transforms instseg does not ship), so ``policies`` is required."""

    def __init__(
        self,
        policies: Sequence[Sequence[dict]],
        prob: Sequence[float] | None = None,
    ) -> None:
        for i, policy in enumerate(policies):
            if not isinstance(policy, (list, tuple)) or not policy:
                raise ValueError(
                    f'AutoAugment: policy {i} must be a non-empty list of transform configs, '
                    f'got {policy!r:.80}'
                )
        super().__init__(transforms=policies, prob=prob)
        self.policies = policies


@TRANSFORMS.register_module()
class TestTimeAug(MMCVTestTimeAug):
    """Every combination of one transform from each list of ``transforms``, applied to a copy
    of the input; returns ``dict(key=[value per combination])``.

    ``transforms=[[Resize(s1), Resize(s2)], [RandomFlip(prob=1.), RandomFlip(prob=0.)],
    [PackDetInputs(...)]]`` gives four views, which ``pseudo_collate`` batches as
    ``inputs[view][image]`` for :class:`~instseg.models.test_time_augs.DetTTAModel`.
    """

    def __init__(self, transforms: Sequence[Sequence[TransformLike]]) -> None:
        if not transforms or any(not isinstance(t, (list, tuple)) or not t for t in transforms):
            raise ValueError('TestTimeAug: transforms must be a list of non-empty lists')
        super().__init__([[build_transform(cfg) for cfg in group] for group in transforms])
