"""instseg's registries: children of mmengine's root registries.

Every registry knows where its members live (``locations``), so a config with
``default_scope='instseg'`` builds any registered type by name without importing modules by hand.
A misspelled type fails with a ``KeyError`` that names the registry and the closest known names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry


def _known_names(registry: Registry) -> set[str]:
    """All type names reachable from ``registry``: its own, its parents' and their children's."""
    names: set[str] = set()
    root = registry
    while root.parent is not None:
        root = root.parent
    stack = [root]
    while stack:
        reg = stack.pop()
        reg.import_from_location()
        names.update(reg.module_dict)
        stack.extend(reg.children.values())
    return names


def _suggesting(build_func: Callable) -> Callable:
    """Wrap a registry build function so an unknown type names the closest registered ones."""

    def build(cfg: Any, registry: Registry, *args: Any, **kwargs: Any) -> Any:
        try:
            return build_func(cfg, registry, *args, **kwargs)
        except KeyError as err:
            obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
            if not isinstance(obj_type, str) or registry.get(obj_type) is not None:
                raise
            raise unknown_type_error(obj_type, registry) from err

    return build


def unknown_type_error(obj_type: str, registry: Registry) -> KeyError:
    """The KeyError for a type name ``registry`` lacks, naming the closest registered names."""
    close = difflib.get_close_matches(obj_type, sorted(_known_names(registry)), n=5)
    hint = f' Closest names: {", ".join(close)}.' if close else ''
    return KeyError(
        f'Unknown type {obj_type!r} in the {registry.scope}::{registry.name} registry.{hint}'
    )


def check_types(cfgs: list, registry: Registry) -> None:
    """Raise :func:`unknown_type_error` for the first dict in ``cfgs`` whose string ``type``
    ``registry`` lacks (mmengine builds pipelines through its root registry, which does not
    suggest names)."""
    for cfg in cfgs:
        obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
        if isinstance(obj_type, str) and registry.get(obj_type) is None:
            raise unknown_type_error(obj_type, registry)


def _child(name: str, parent: Registry, location: str) -> Registry:
    return Registry(
        name,
        parent=parent,
        locations=[location],
        build_func=_suggesting(parent.build_func),
    )


RUNNERS = _child('runner', MMENGINE_RUNNERS, 'instseg.engine')
LOOPS = _child('loop', MMENGINE_LOOPS, 'instseg.engine')
HOOKS = _child('hook', MMENGINE_HOOKS, 'instseg.engine')
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, 'instseg.engine')
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, 'instseg.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, 'instseg.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    'optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, 'instseg.engine'
)
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, 'instseg.engine')

DATASETS = _child('dataset', MMENGINE_DATASETS, 'instseg.datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'instseg.datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'instseg.datasets.transforms')
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, 'instseg.datasets')

MODELS = _child('model', MMENGINE_MODELS, 'instseg.models')
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, 'instseg.models')
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, 'instseg.models.task_modules')
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, 'instseg.models')

METRICS = _child('metric', MMENGINE_METRICS, 'instseg.evaluation')
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, 'instseg.evaluation')

VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'instseg.visualization')
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, 'instseg.visualization')
