"""Configs written for mmdetection 3.x: their scope, type prefixes and imports, resolved to instseg.

mmdetection 3.x configs name the ``mmdet`` registry scope (``default_scope='mmdet'``), prefix
types borrowed from other OpenMMLab projects (``type='mmpretrain.ConvNeXt'``) and ask for
those projects' modules to be imported (``custom_imports=dict(imports=['mmpretrain.models'])``).
instseg registers the same type names itself, so all three point at instseg's registries.
"""

from __future__ import annotations

from typing import Any

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import import_modules_from_strings

# OpenMMLab projects whose registered types instseg provides under the same names. 'mmcls' is
# mmpretrain's name before 1.0 (mmdetection 3.0's ConvNeXt configs import mmcls.models).
PROJECTS = ('mmdet', 'mmpretrain', 'mmcls')


def _project(name: str) -> str | None:
    """The project of a dotted module name or prefixed type, if it is one instseg stands for."""
    head = name.split('.', 1)[0]
    return head if head in PROJECTS else None


def _strip_prefixes(node: Any, renamed: dict[str, str]) -> Any:
    """``node`` with every ``type='mmdet.X'`` (or mmpretrain / mmcls) turned into ``type='X'``."""
    if isinstance(node, dict):
        out = {key: _strip_prefixes(value, renamed) for key, value in node.items()}
        kind = out.get('type')
        if isinstance(kind, str) and '.' in kind and _project(kind):
            out['type'] = renamed[kind] = kind.split('.', 1)[1]
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_strip_prefixes(value, renamed) for value in node)
    return node


def find_3x_markers(cfg: dict) -> list[str]:
    """What marks ``cfg`` as written for mmdetection 3.x's registries (empty when nothing)."""
    markers = []
    scope = cfg.get('default_scope')
    if isinstance(scope, str) and _project(scope):
        markers.append(f'default_scope={scope!r}')
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else imports
    named = [name for name in imports if _project(name)]
    if named:
        markers.append(f'custom_imports {named}')
    renamed: dict[str, str] = {}
    _strip_prefixes(cfg, renamed)
    if renamed:
        markers.append(f'types {sorted(renamed)}')
    return markers


def resolve_3x(cfg: Config, source: str) -> Config:
    """Point ``cfg``'s scope, prefixed types and project imports at instseg; log it in one line.

    ``custom_imports`` naming other modules are imported as mmengine would (Config.fromfile is
    called without importing them, so that mmdet / mmpretrain need not be installed).
    """
    data = cfg.to_dict()
    markers = find_3x_markers(data)
    custom = data.pop('custom_imports', None)
    if custom:
        imports = custom.get('imports', [])
        imports = [imports] if isinstance(imports, str) else list(imports)
        others = [name for name in imports if not _project(name)]
        if others:
            import_modules_from_strings(others, custom.get('allow_failed_imports', False))
            data['custom_imports'] = dict(custom, imports=others)
    if not markers:
        return cfg if not custom else Config(data, filename=cfg.filename)
    if _project(str(data.get('default_scope'))):
        data['default_scope'] = 'instseg'
    data = _strip_prefixes(data, {})
    print_log(
        f'{source} is written for mmdetection 3.x ({"; ".join(markers)}): its types resolve to '
        "instseg's registries of the same names (default_scope='instseg').",
        logger='current',
    )
    return Config(data, filename=cfg.filename)
