"""Optimiser constructors that mmengine lacks: layer-wise lr decay for ConvNeXt and Swin."""

from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from instseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

_NO_DECAY_NAMES = ('absolute_pos_embed', 'relative_position_bias_table')
_OPTIONS = {'decay_rate', 'decay_type', 'num_layers'}


def convnext_layer_id(name: str, num_layers: int, depths: list[int], stage_wise: bool) -> int:
    """Depth of a detector parameter for lr decay with a ConvNeXt backbone (mmdetection's rule).

    Layer-wise: the stem 0, stage 0 1, stage 1 (and its downsampling) 2, stage 2 from 3 on in
    groups of three blocks, stage 3 ``num_layers``. Stage-wise: downsampling layers 0, stage s
    ``s + 1``. Everything outside the backbone stages (output norms, neck, heads) gets
    ``num_layers + 1``.
    """
    parts = name.split('.')
    if parts[:2] == ['backbone', 'downsample_layers']:
        stage = int(parts[2])
        if stage_wise:
            return 0
        return (0, 2, 3)[stage] if stage < 3 else num_layers
    if parts[:2] == ['backbone', 'stages']:
        stage, block = int(parts[2]), int(parts[3])
        if stage_wise:
            return stage + 1
        if stage == 2:
            return 3 + block // 3
        return (1, 2)[stage] if stage < 2 else num_layers
    return num_layers + 1


def swin_layer_id(name: str, num_layers: int, depths: list[int], stage_wise: bool) -> int:
    """Depth of a detector parameter for lr decay with a Swin backbone.

    Layer-wise: patch embedding and absolute position embedding 0, block j of stage s
    ``sum(depths[:s]) + j + 1``, a stage's patch merging the depth of its last block (as
    mmpretrain). Stage-wise: stage s ``s + 1``. Output norms, neck and heads get
    ``num_layers + 1``.
    """
    parts = name.split('.')
    if parts[0] != 'backbone':
        return num_layers + 1
    if parts[1] in ('patch_embed', 'absolute_pos_embed'):
        return 0
    if parts[1] == 'stages':
        stage = int(parts[2])
        if stage_wise:
            return stage + 1
        if parts[3] == 'downsample':
            return sum(depths[: stage + 1])
        return sum(depths[:stage]) + int(parts[4]) + 1
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Learning rates that shrink towards the input for detectors with a ConvNeXt or Swin backbone.

    A parameter at depth ``layer_id`` (see :func:`convnext_layer_id`, :func:`swin_layer_id`)
    trains with ``lr * decay_rate ** (num_layers + 1 - layer_id)``: the neck and heads with the
    base lr, the last backbone layer with ``lr * decay_rate``. As in mmdetection, biases and all
    1-D parameters (norms, layer scales), Swin's position tables and embeddings get no weight
    decay, and frozen parameters are left out.

    ``paramwise_cfg`` keys (only these):
        decay_rate: factor per layer, e.g. 0.95.
        decay_type: 'layer_wise' (default) or 'stage_wise'.
        num_layers: the depth of the last backbone layer. Defaults for 'layer_wise': ConvNeXt
            ``3 + ceil(depths[2] / 3)`` (6 for tiny, 12 for small/base/large, mmdetection's
            values), Swin ``sum(depths)``; for 'stage_wise': the number of stages.

    Param groups carry ``lr_scale``, ``group_name`` and ``param_names`` besides ``lr`` and
    ``weight_decay``.
    """

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        """Append one param group per (depth, decay or not) of ``module``'s trainable params."""
        # Deferred: the engine is importable without building the model zoo.
        from instseg.models.backbones import ConvNeXt, SwinTransformer

        unknown = set(self.paramwise_cfg) - _OPTIONS
        if unknown or 'decay_rate' not in self.paramwise_cfg:
            raise ValueError(
                'LearningRateDecayOptimizerConstructor takes paramwise_cfg keys '
                f'{sorted(_OPTIONS)} (decay_rate required), got {sorted(self.paramwise_cfg)}'
            )
        decay_rate = float(self.paramwise_cfg['decay_rate'])
        decay_type = self.paramwise_cfg.get('decay_type', 'layer_wise')
        if decay_type not in ('layer_wise', 'stage_wise'):
            raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")
        stage_wise = decay_type == 'stage_wise'
        backbone = getattr(module, 'backbone', None)
        if isinstance(backbone, ConvNeXt):
            layer_id_of = convnext_layer_id
            depths = backbone.depths
            needed = len(depths) if stage_wise else 3 + -(-depths[2] // 3)
        elif isinstance(backbone, SwinTransformer):
            layer_id_of = swin_layer_id
            depths = list(backbone.depths)
            needed = len(depths) if stage_wise else sum(depths)
        else:
            raise NotImplementedError(
                'LearningRateDecayOptimizerConstructor supports ConvNeXt and SwinTransformer '
                f'backbones, got {type(backbone).__name__}'
            )
        num_layers = int(self.paramwise_cfg.get('num_layers', needed))
        if num_layers < needed:
            raise ValueError(
                f'paramwise_cfg num_layers={num_layers} is too small for this '
                f'{type(backbone).__name__} ({decay_type} needs at least {needed})'
            )

        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias') or name.endswith(_NO_DECAY_NAMES)
            layer_id = layer_id_of(name, num_layers, depths, stage_wise)
            group_name = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
            if group_name not in groups:
                scale = decay_rate ** (num_layers + 1 - layer_id)
                groups[group_name] = dict(
                    params=[],
                    param_names=[],
                    lr=self.base_lr * scale,
                    lr_scale=scale,
                    weight_decay=0.0 if no_decay else self.base_wd,
                    group_name=group_name,
                )
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)
        summary = ', '.join(
            f'{g["group_name"]}: {len(g["params"])} x lr*{g["lr_scale"]:.4g}'
            for g in groups.values()
        )
        print_log(f'{decay_type} lr decay {decay_rate}: {summary}', 'current', logging.INFO)
        params.extend(groups.values())
