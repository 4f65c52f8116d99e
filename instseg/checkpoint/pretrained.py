"""Backbones' pretrained weights: ``init_cfg=dict(type='Pretrained', checkpoint=...)``.

On any instseg backbone, ``checkpoint`` is a local file (``.pth``/``.pt``/``.bin`` through the
safe reader, ``.safetensors``) or a URL of a file already on disk (:mod:`.locate`); nothing is
downloaded. The weights are taken from under ``state_dict``/``model``/``module``, a detector
checkpoint's ``backbone.`` entries are kept, the keys are converted
(:mod:`~instseg.checkpoint.convert.backbones`) and loaded by :func:`~.load.load_state`: a shape
mismatch is an error naming the key and both shapes; missing and unused keys are logged by name.
:func:`pretrained_checkpoints` lists a model's files, so that a run can check them before it
builds its datasets.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Callable

from mmengine.model import BaseModule
from torch import Tensor, nn

from instseg.checkpoint.convert.backbones import convert_for_backbone
from instseg.checkpoint.load import load_state
from instseg.checkpoint.locate import locate_weights
from instseg.checkpoint.read import example_keys, read_state_dict

_INIT_CFG_KEYS = {'type', 'checkpoint', 'prefix', 'map_location'}


def _select(state: dict[str, Tensor], prefix: str | None, source: str) -> dict[str, Tensor]:
    """Keep the entries under ``prefix`` (stripped); without one, keep a detector checkpoint's
    ``backbone.`` entries."""
    if prefix:
        selected = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not selected:
            raise KeyError(
                f'{source} has no key starting with {prefix!r}; example keys: {example_keys(state)}'
            )
        return selected
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
    return state


def load_pretrained(
    backbone: nn.Module, checkpoint: str, prefix: str | None = None, map_location: str = 'cpu'
) -> tuple[list[str], list[str]]:
    """Read ``checkpoint``, convert its keys to ``backbone``'s and load them (see module doc).

    Returns the (missing, unexpected) keys after conversion.
    """
    if not osp.isfile(osp.expanduser(locate_weights(checkpoint))):
        raise FileNotFoundError(
            f'Pretrained weights {checkpoint} do not exist. instseg downloads nothing: put the '
            'file there (the config names where to get it) or change init_cfg.checkpoint'
        )
    state = _select(read_state_dict(checkpoint, map_location), prefix, checkpoint)
    state = convert_for_backbone(state, backbone, source=checkpoint)
    adapt = getattr(backbone, 'adapt_pretrained_state', None)
    if adapt is not None:
        state = adapt(state)
    report = load_state(backbone, state, source=checkpoint)
    return report.missing, report.unexpected


def split_init_cfg(init_cfg: dict | list[dict] | None) -> tuple[dict | None, list[dict]]:
    """``init_cfg`` -> (its ``Pretrained`` entry or None, the other entries)."""
    cfgs = [] if init_cfg is None else [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg holds more than one Pretrained entry: {init_cfg}')
    return (pretrained[0] if pretrained else None), [c for c in cfgs if c not in pretrained]


def init_backbone_weights(
    backbone: BaseModule, init_from_scratch: Callable[[], None] | None = None
) -> None:
    """``init_weights`` of instseg's backbones: ``init_from_scratch`` (when no file is given) and
    the non-pretrained ``init_cfg`` entries, then the pretrained file through
    :func:`load_pretrained` instead of mmengine's loader."""
    if backbone.is_init:
        BaseModule.init_weights(backbone)  # mmengine warns about the second call
        return
    pretrained, others = split_init_cfg(backbone.init_cfg)
    if pretrained is None and init_from_scratch is not None:
        init_from_scratch()
    original = backbone.init_cfg
    backbone.init_cfg = others or None
    try:
        BaseModule.init_weights(backbone)
    finally:
        backbone.init_cfg = original
    if pretrained is not None:
        unknown = set(pretrained) - _INIT_CFG_KEYS
        if unknown or 'checkpoint' not in pretrained:
            raise ValueError(
                f'Pretrained init_cfg takes checkpoint, prefix and map_location, got {pretrained}'
            )
        load_pretrained(
            backbone,
            pretrained['checkpoint'],
            prefix=pretrained.get('prefix'),
            map_location=pretrained.get('map_location', 'cpu'),
        )


def pretrained_checkpoints(model: nn.Module) -> list[str]:
    """The ``checkpoint`` of every ``init_cfg=dict(type='Pretrained')`` in ``model``, in order."""
    found = []
    for module in model.modules():
        pretrained, _ = split_init_cfg(getattr(module, 'init_cfg', None))
        if pretrained is not None and pretrained.get('checkpoint'):
            found.append(str(pretrained['checkpoint']))
    return found
