"""``--cfg-options`` on a 2.x config: 2.x keys are merged before the translation, so they mean
what they mean in the file, and each must change the translated config."""

from __future__ import annotations

import copy
import warnings
from typing import Any

from mmengine.config import Config

from .report import Config2xError
from .translate import NATIVE_KEYS, translate_2x


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options for the 2.x config, options for its translation).

    2.x keys (``optimizer.lr``, ``data.samples_per_gpu``, ``lr_config.step``, ``runner.max_epochs``,
    ``total_epochs``, ...) and every ``model.*`` key (the model is translated as a whole, so
    ``model.pretrained`` and ``model.backbone.use_checkpoint`` work) go before the translation;
    native keys (``optim_wrapper.optimizer.lr``, ``train_dataloader.batch_size``, ...) after it.
    """
    before, after = {}, {}
    for key, value in options.items():
        top = key.split('.', 1)[0]
        (after if top in NATIVE_KEYS and top != 'model' else before)[key] = value
    return before, after


def _perturbed(value: Any) -> Any:
    """A value of the same shape that differs from ``value`` (None where there is none)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + '_x'
    if isinstance(value, (list, tuple)) and value:
        items = [_perturbed(v) for v in value]
        return None if any(v is None for v in items) else type(value)(items)
    return None


def _translated(data: dict, options: dict[str, Any], source: str) -> dict | None:
    """The translation of ``data`` with ``options`` merged, quietly; None when it refuses."""
    cfg = Config(copy.deepcopy(data))
    cfg.merge_from_dict(options)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return translate_2x(cfg, source=source)[0].to_dict()
        except (Config2xError, KeyError, TypeError, ValueError):
            return None


def check_options_land(cfg: Config, options: dict[str, Any], source: str) -> None:
    """Raise naming each of ``options`` (2.x keys) that changes nothing in the translation.

    An option lands when some other value of it translates differently; for a value with no
    other of the same kind (None, a dict) the option must change the translation itself, or
    set a key the 2.x config already has.
    """
    data = cfg.to_dict()
    nowhere = []
    for key, value in options.items():
        with_option = _translated(data, {key: value}, source)
        other = _perturbed(value)
        if other is not None:
            changed = _translated(data, {key: other}, source)
        else:
            changed = _translated(data, {}, source)
            if changed == with_option and _has_key(data, key):
                continue
        if with_option is not None and changed == with_option:
            nowhere.append(key)
    if nowhere:
        raise Config2xError(
            f'{source}: --cfg-options {", ".join(nowhere)}: '
            f'{"this key lands" if len(nowhere) == 1 else "these keys land"} nowhere in the '
            'translation of this mmdetection 2.x config (not a setting the translation reads); '
            'check the spelling, or give the native key (e.g. optim_wrapper.optimizer.lr, '
            'train_dataloader.batch_size), which applies after the translation'
        )


def _has_key(data: dict, dotted: str) -> bool:
    node: Any = data
    for part in dotted.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True
