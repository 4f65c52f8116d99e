"""Loading weights into a detector or a backbone, converting key names on the fly.

The Runner's ``load_checkpoint`` (``load_from=``, ``--resume``, the checkpoint of
``tools/test.py``) goes through :func:`load_detector_state`: the file is read by the safe reader,
its key names are converted (:mod:`instseg.checkpoint.convert`: torchvision, mmdetection 2.x and
3.x, ...) and the weights are copied into the model by :func:`load_state`, which backbones'
``init_cfg=dict(type='Pretrained')`` uses too (:mod:`.pretrained`). Missing and unexpected keys
are logged by name. A tensor whose shape differs from the model's is an error naming the key and
both shapes, except, for a detector, in the class-specific layers (:data:`CLASS_SPECIFIC_LAYERS`)
when only the number of classes differs: starting a 1-class model from an 80-class COCO
checkpoint keeps those layers as the model has them (freshly initialised) and logs which.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmengine.logging import print_log
from torch import Tensor, nn

from instseg.checkpoint.convert import convert_state_dict
from instseg.checkpoint.detect import BACKBONE_FORMATS
from instseg.checkpoint.read import example_keys, extract_state_dict, read_checkpoint

# Output layers with one row (or 4 rows) per class, by module name (mmdetection's): the box
# classifier and regressor and the mask predictor, in every stage of a cascade.
CLASS_SPECIFIC_LAYERS = ('fc_cls', 'fc_reg', 'conv_logits')
_MAX_LISTED = 100  # keys named in one message
_NEWLINE = '\n  '


@dataclass
class LoadReport:
    """What loading did: the format converted from and the keys that did not load as they were."""

    format: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)


def load_state(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str = 'state dict',
    fmt: str = '',
    *,
    keep_class_layers: bool = False,
    strict: bool = False,
    logger: Any = 'current',
) -> LoadReport:
    """Copy ``state`` (already under ``module``'s key names) into ``module`` and report.

    Args:
        module: the detector or backbone (not a DDP wrapper).
        state: the weights; not modified.
        source: the file name, for messages.
        fmt: the format ``state`` was converted from, for messages ('' when not known).
        keep_class_layers: where only the number of classes differs in a
            :data:`CLASS_SPECIFIC_LAYERS` layer, keep the module's own tensor (and report it)
            instead of failing.
        strict: raise RuntimeError when keys are missing or unexpected.
        logger: mmengine logger (or 'current') for the report.

    Raises:
        ValueError: a shape differs (naming every such key with both shapes), or no key of
            ``state`` is one of ``module``'s.
    """
    own = module.state_dict()
    name = type(module).__name__
    if state and not any(k in own for k in state):
        raise ValueError(
            f'No key of {source} matches {name}: the file has {example_keys(state)}; '
            f'the model has {example_keys(own)}'
        )
    state = dict(state)
    reinitialized, mismatched = [], []
    for key in [k for k in state if k in own and state[k].shape != own[k].shape]:
        if (
            keep_class_layers
            and _is_class_specific(key)
            and state[key].shape[1:] == own[key].shape[1:]
        ):
            reinitialized.append(key)
            del state[key]
        else:
            mismatched.append(
                f'{key}: checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)}'
            )
    if mismatched:
        raise ValueError(
            f'Cannot load {source}{_format(fmt)} into {name}: {len(mismatched)} tensor(s) '
            f"differ in shape from the model's:{_NEWLINE}{_listing(mismatched, sep=_NEWLINE)}\n"
            'Was it written for this architecture (depth, widths, number of convs, '
            'class-agnostic heads)?'
        )
    result = module.load_state_dict(state, strict=False)
    # BatchNorm's batch counter only matters for momentum=None; torchvision's frozen BN lacks it.
    missing = [
        k
        for k in result.missing_keys
        if not k.endswith('num_batches_tracked') and k not in reinitialized
    ]
    report = LoadReport(fmt, missing, list(result.unexpected_keys), reinitialized)
    _log(report, source, name, logger)
    if strict and (report.missing or report.unexpected):
        raise RuntimeError(
            f'{source} does not match the model exactly: missing keys: '
            f'{_listing(report.missing)}; unexpected keys: {_listing(report.unexpected)}'
        )
    return report


def load_detector_weights(
    model: nn.Module,
    filename: str,
    map_location: Any = 'cpu',
    strict: bool = False,
    fmt: str = 'auto',
    logger: Any = 'current',
) -> tuple[Any, LoadReport]:
    """Read ``filename`` (a path, or a URL of a file on disk), convert its keys and load them
    into ``model``. Returns ``(checkpoint as read, LoadReport)``; see :func:`load_detector_state`.
    """
    checkpoint = read_checkpoint(filename, map_location)
    report = load_detector_state(model, checkpoint, str(filename), strict, fmt, logger=logger)
    return checkpoint, report


def load_detector_state(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    source: str = 'checkpoint',
    strict: bool = False,
    fmt: str = 'auto',
    revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),),
    logger: Any = 'current',
) -> LoadReport:
    """Convert a loaded checkpoint's state dict to instseg's keys and copy it into ``model``.

    ``checkpoint`` is what ``torch.load`` returned (a bare state dict or one under
    ``state_dict`` or ``model``, with or without ``meta``, ``message_hub``, ``optimizer``);
    ``fmt`` is 'auto' or one of :data:`instseg.checkpoint.detect.FORMATS` (a backbone-only
    format loads into ``model.backbone``); ``revise_keys`` are ``(pattern, replacement)`` regex
    pairs applied to every key first. See :func:`load_state` for the rest.
    """
    state, fmt = convert_for_model(model, checkpoint, source, fmt, revise_keys)
    return load_state(
        model, state, source, fmt, keep_class_layers=True, strict=strict, logger=logger
    )


def convert_for_model(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    source: str = 'checkpoint',
    fmt: str = 'auto',
    revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),),
) -> tuple[dict[str, Tensor], str]:
    """The state dict of a loaded checkpoint under ``model``'s key names: ``(state, format)``.

    What :func:`load_detector_state` loads, for callers that check a checkpoint before loading
    it. A torchvision COCO checkpoint keeps the 80 used COCO classes when ``model`` has 80; a
    backbone-only checkpoint gets the ``backbone.`` prefix.
    """
    state = extract_state_dict(checkpoint, source)
    for pattern, replacement in revise_keys:
        state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
    state, fmt = convert_state_dict(state, fmt, source, num_classes=_num_classes(model))
    if fmt in BACKBONE_FORMATS:
        state = {f'backbone.{k}': v for k, v in state.items()}
    return state, fmt


def _num_classes(model: nn.Module) -> int | None:
    """Number of classes of the model's (first) box head, or None without one."""
    for module in model.modules():
        if hasattr(module, 'fc_cls') and isinstance(getattr(module, 'num_classes', None), int):
            return module.num_classes
    return None


def _is_class_specific(key: str) -> bool:
    parts = key.split('.')
    return len(parts) >= 2 and parts[-2] in CLASS_SPECIFIC_LAYERS


def _listing(keys: Sequence[str], sep: str = ', ') -> str:
    if not keys:
        return 'none'
    more = f'{sep}... and {len(keys) - _MAX_LISTED} more' if len(keys) > _MAX_LISTED else ''
    return sep.join(keys[:_MAX_LISTED]) + more


def _log(report: LoadReport, source: str, name: str, logger: Any) -> None:
    if report.reinitialized:
        print_log(
            f'{source}: the number of classes differs; these class-specific layers keep the '
            f"model's initialisation: {_listing(report.reinitialized)}",
            logger=logger,
            level=logging.WARNING,
        )
    if report.missing:
        print_log(
            f'{name}: {len(report.missing)} weights missing from {source} keep their '
            f'initialisation: {_listing(report.missing)}',
            logger=logger,
            level=logging.WARNING,
        )
    if report.unexpected:
        print_log(
            f'{name}: {len(report.unexpected)} entries of {source} are unused: '
            f'{_listing(report.unexpected)}',
            logger=logger,
            level=logging.WARNING,
        )
    print_log(f'{name}: loaded {source}{_format(report.format)}', logger=logger, level=logging.INFO)


def _format(fmt: str) -> str:
    return f' ({fmt} format)' if fmt else ''
