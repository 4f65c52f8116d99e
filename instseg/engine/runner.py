"""instseg's Runner: mmengine's, plus CPU distributed training, default safety hooks, robust
auto-resume and checkpoints that are only written whole and only from a finite model."""

from __future__ import annotations

import copy
import logging
import os
import os.path as osp
import re
from unittest import mock

import torch
from mmengine.config import Config
from mmengine.dist import init_dist, is_distributed, is_main_process
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner as MMEngineRunner
from torch import nn

from instseg.checkpoint import (
    MissingWeightsError,
    latest_checkpoint,
    load_detector_state,
    read_checkpoint,
    remove_stale_temp_files,
    save_atomically,
)
from instseg.checkpoint.locate import missing_weights
from instseg.checkpoint.pretrained import pretrained_checkpoints
from instseg.registry import RUNNERS

# Hooks every run gets in addition to mmengine's defaults; a config removes one by setting it to
# None in ``default_hooks`` (e.g. ``default_hooks = dict(loss_guard=None)``) or configures it
# there (e.g. ``default_hooks = dict(loss_guard=dict(type='LossGuardHook', skip_nonfinite=True))``).
DEFAULT_HOOKS: dict[str, dict] = dict(
    loss_guard=dict(type='LossGuardHook'),
    rng_state=dict(type='RNGStateHook'),
    # Averages BatchNorm statistics over the processes after each epoch (a no-op in a single
    # process): BN that is not synchronised drifts apart per process, and without this each rank
    # would validate its images with its own statistics while the checkpoint holds rank 0's.
    sync_buffers=dict(type='SyncBuffersHook'),
)

_MMENGINE_DEFAULT_HOOKS = (
    'runtime_info',
    'timer',
    'sampler_seed',
    'logger',
    'param_scheduler',
    'checkpoint',
)


class NonFiniteCheckpointError(RuntimeError):
    """The model holds NaN or Inf values, so it is not written as a checkpoint."""


def dist_backend(requested: str | None) -> str:
    """The ``torch.distributed`` backend for this host: ``requested``, or NCCL with CUDA and gloo
    without it. A requested NCCL (mmdetection's default runtime) falls back to gloo on a host
    without CUDA, where NCCL cannot run, with a warning."""
    cuda = torch.cuda.is_available()
    if requested is None:
        return 'nccl' if cuda else 'gloo'
    if requested == 'nccl' and not cuda:
        print_log(
            "env_cfg.dist_cfg.backend='nccl' needs CUDA, which this host lacks: using gloo",
            logger='current',
            level=logging.WARNING,
        )
        return 'gloo'
    return requested


def nonfinite_tensors(module: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of ``module`` holding NaN or Inf."""
    state = module.state_dict()
    floats = [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not floats or bool(torch.stack([torch.isfinite(v).all() for _, v in floats]).all()):
        return []
    return [k for k, v in floats if not bool(torch.isfinite(v).all())]


_RUN_FILES = re.compile(r'^((epoch|iter)_\d+|best_.+)\.pth$|^last_checkpoint$')


def checkpoints_in(work_dir: str) -> list[str]:
    """Names of the files in ``work_dir`` that a training run writes there: ``epoch_N.pth``,
    ``iter_N.pth``, ``best_*.pth`` and ``last_checkpoint`` (sorted; empty for a missing dir)."""
    if not osp.isdir(work_dir):
        return []
    return sorted(name for name in os.listdir(work_dir) if _RUN_FILES.match(name))


def check_num_classes(model: nn.Module, num_classes: int, source: str = 'the dataset') -> None:
    """Raise ValueError naming every head (not the class-agnostic RPN) whose ``num_classes``
    differs from the dataset's ``num_classes``, with both numbers."""
    model = model.module if is_model_wrapper(model) else model
    wrong = [
        f'{name} ({module.num_classes})'
        for name, module in model.named_modules()
        if name and 'rpn' not in name.split('.')[0]
        and isinstance(getattr(module, 'num_classes', None), int)
        and module.num_classes != num_classes
    ]  # fmt: skip
    if wrong:
        raise ValueError(
            f'{source} has {num_classes} classes but {", ".join(wrong)} predict another number: '
            f'set num_classes={num_classes} in every head of the model (e.g. --cfg-options '
            f'model.roi_head.bbox_head.num_classes={num_classes} '
            f'model.roi_head.mask_head.num_classes={num_classes})'
        )


# Weights beyond this magnitude mean training diverged, even while they are still finite.
DIVERGED_WEIGHT = 1e6


def diverged_tensors(module: nn.Module, limit: float = DIVERGED_WEIGHT) -> list[str]:
    """Names of the floating-point parameters of ``module`` with a value above ``limit`` in
    magnitude (finite, but far beyond what a trained network holds)."""
    return [
        name
        for name, p in module.named_parameters()
        if p.is_floating_point() and p.numel() and float(p.detach().abs().max()) > limit
    ]


def untrained_frozen_backbone(model: nn.Module, load_from: str | None) -> str | None:
    """A warning when the backbone starts from random weights (no ``Pretrained`` init_cfg, no
    ``load_from``) yet freezes stages or BatchNorm statistics, which then never train; else None."""
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    if backbone is None or load_from:
        return None
    inits = backbone.init_cfg if isinstance(backbone.init_cfg, list) else [backbone.init_cfg]
    if any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in inits):
        return None
    frozen = getattr(backbone, 'frozen_stages', -1)
    norm_eval = bool(getattr(backbone, 'norm_eval', False))
    if frozen < 0 and not norm_eval:
        return None
    what = ' and '.join(
        ([f'frozen_stages={frozen} keeps the stem and {frozen} stage(s) at random weights']
         if frozen >= 0 else [])
        + (['norm_eval=True keeps BatchNorm statistics at their initial values'] if norm_eval
           else [])
    )  # fmt: skip
    return (
        f'model.backbone has no pretrained weights (init_cfg=None, no load_from), yet {what}: '
        "the model will barely learn. Set model.backbone.init_cfg=dict(type='Pretrained', "
        'checkpoint=...), or train from scratch with model.backbone.frozen_stages=-1 '
        'model.backbone.norm_eval=False'
    )


class WorkDirInUseError(FileExistsError):
    """A new run (no ``--resume``) into a work dir holding another run's checkpoints."""


class _TextCachingConfig(Config):
    """A config whose ``pretty_text`` is computed once per content.

    mmengine formats the whole config with yapf for every checkpoint it writes (up to a second
    on a busy CPU, several times per epoch with ``save_best``); the runner's config rarely
    changes, so the text is reused until its content does.
    """

    @property
    def pretty_text(self) -> str:
        key = repr(self._cfg_dict)
        cached = self.__dict__.get('_pretty_text_cache')
        if cached is None or cached[0] != key:
            cached = (key, super().pretty_text)
            object.__setattr__(self, '_pretty_text_cache', cached)  # Config routes setattr
        return cached[1]


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """mmengine's Runner with what instseg's training needs on top.

    - Distributed runs pick the process-group backend for the host (NCCL on GPUs, gloo on CPU)
      and also run on CPU-only hosts, where ``SyncBN`` falls back to per-process BatchNorm.
    - ``LossGuardHook``, ``RNGStateHook`` and ``SyncBuffersHook`` are registered by default (see
      ``DEFAULT_HOOKS``).
    - Checkpoints are written to a temporary file and renamed, and refused for a model holding
      NaN or Inf (:class:`NonFiniteCheckpointError`).
    - Auto-resume (``resume=True`` without ``load_from``) finds the latest checkpoint even when
      ``last_checkpoint`` is stale, removes temporary files left by killed writers, and warns when
      there is nothing to resume.
    - A new run into a work dir holding another run's checkpoints is refused
      (:class:`WorkDirInUseError`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if type(self.cfg) is Config:
            object.__setattr__(self.cfg, '__class__', _TextCachingConfig)

    def setup_env(self, env_cfg: dict) -> None:
        """mmengine's environment set-up with the backend chosen by :func:`dist_backend`."""
        if self.distributed and not is_distributed():
            env_cfg = copy.deepcopy(dict(env_cfg))
            dist_cfg = dict(env_cfg.get('dist_cfg') or {})
            dist_cfg['backend'] = dist_backend(dist_cfg.get('backend'))
            env_cfg['dist_cfg'] = dist_cfg
            if not torch.cuda.is_available():
                # mmengine's launchers select a CUDA device unconditionally; a CPU host has none.
                with mock.patch.object(torch.cuda, 'set_device', lambda device: None):
                    init_dist(self.launcher, **dist_cfg)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        """mmengine's DDP wrapping; on a CPU host DDP gets no ``device_ids`` and SyncBN layers,
        which have no CPU kernel, become BatchNorm (statistics stay per process)."""
        if not self.distributed or is_model_wrapper(model) or torch.cuda.is_available():
            return super().wrap_model(model_wrapper_cfg, model)
        if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
            self.logger.warning(
                'SyncBN needs CUDA: on this CPU host its layers run as BatchNorm with '
                'per-process statistics'
            )
            model = revert_sync_batchnorm(model)
        if self.cfg.get('sync_bn') is not None:
            self.logger.warning(f'sync_bn={self.cfg.sync_bn!r} is ignored on a CPU host')
        if model_wrapper_cfg is None:
            model_wrapper_cfg = dict(
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False),
            )
        model_wrapper_cfg = dict(model_wrapper_cfg)
        model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
        return MODEL_WRAPPERS.build(model_wrapper_cfg, default_args=dict(module=model.cpu()))

    def register_default_hooks(self, hooks: dict | None = None) -> None:
        """mmengine's default hooks plus ``DEFAULT_HOOKS``; ``hooks`` overrides either, and a
        None in it leaves that hook out."""
        hooks = dict(hooks or {})
        for name, cfg in DEFAULT_HOOKS.items():
            hooks.setdefault(name, copy.deepcopy(cfg))
        # mmengine accepts None (= leave out) only for its own default names
        hooks = {k: v for k, v in hooks.items() if v is not None or k in _MMENGINE_DEFAULT_HOOKS}
        super().register_default_hooks(hooks)

    def train(self) -> nn.Module:
        """mmengine's ``train``, refused before any work when this is a new run (no resume) into
        a work dir that already holds another run's checkpoints: they would be overwritten one
        by one, leaving a mixture of two runs (:class:`WorkDirInUseError`)."""
        found = [] if self._resume else checkpoints_in(self.work_dir)
        if found:
            shown = ', '.join(found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')
            raise WorkDirInUseError(
                f"{osp.abspath(self.work_dir)} already holds another run's checkpoints ({shown}); "
                'a new run there would overwrite them. Continue that run with --resume, or start '
                'the new one in another --work-dir.'
            )
        self.check_weights_on_disk(pretrained=True)
        warning = None if self._resume else untrained_frozen_backbone(self.model, self._load_from)
        if warning:
            self.logger.warning(warning)
        return super().train()

    def build_train_loop(self, loop):
        """mmengine's train loop (its dataset is built here), then a check that every class head
        of the model predicts as many classes as the training set has, before the first
        iteration: a ValueError names both numbers and the heads that differ."""
        loop = super().build_train_loop(loop)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if classes:
            check_num_classes(self.model, len(classes), type(dataset).__name__)
        return loop

    def val(self) -> dict:
        """mmengine's ``val``, after :meth:`check_weights_on_disk` (``load_from`` only)."""
        self.check_weights_on_disk(pretrained=False)
        return super().val()

    def test(self) -> dict:
        """mmengine's ``test``, after :meth:`check_weights_on_disk` (``load_from`` only)."""
        self.check_weights_on_disk(pretrained=False)
        return super().test()

    def check_weights_on_disk(self, pretrained: bool) -> None:
        """Raise MissingWeightsError, before any dataset is built, naming every weights file the
        run would read and cannot find: ``load_from`` and, for training (``pretrained``), each
        ``init_cfg=dict(type='Pretrained')`` (paths, or URLs looked up on disk)."""
        names = pretrained_checkpoints(self.model) if pretrained else []
        if self._load_from:
            names.append(str(self._load_from))
        problems = missing_weights(names)
        if problems:
            raise MissingWeightsError(
                'Weights this run needs are missing (checked before building the datasets):\n  '
                + '\n  '.join(problems)
            )

    def load_or_resume(self) -> None:
        """mmengine's, with auto-resume using :func:`latest_checkpoint`."""
        if is_main_process() and osp.isdir(self.work_dir):
            for path in remove_stale_temp_files(self.work_dir):
                self.logger.info(f'Removed {path}, left by a killed checkpoint writer')
        if self._resume and self._load_from is None and not self._has_loaded:
            found = latest_checkpoint(self.work_dir)
            if found is None:
                self.logger.warning(
                    f'--resume found no checkpoint to resume from in {osp.abspath(self.work_dir)}'
                    ' (is --work-dir right?): training starts from scratch'
                )
                self._resume = False
            else:
                self._load_from = found
        super().load_or_resume()

    def load_checkpoint(
        self,
        filename: str,
        map_location: str | object = 'cpu',
        strict: bool = False,
        revise_keys: list = [(r'^module\.', '')],  # noqa: B006  (mmengine's signature)
    ) -> dict:
        """mmengine's ``load_checkpoint`` (``load_from``, ``--resume``, ``tools/test.py``) that
        reads through the safe loader and converts torchvision / mmdetection key names on the fly;
        see :func:`instseg.checkpoint.load.load_detector_state`. Returns the checkpoint."""
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model
        # DDP, TTA and tiled-inference wrappers hold the detector the checkpoint was saved from.
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        load_detector_state(
            model, checkpoint, str(filename), strict, revise_keys=revise_keys, logger=self.logger
        )
        self._has_loaded = True
        return checkpoint

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        """mmengine's ``save_checkpoint``, written whole or not at all, and never from a model
        holding NaN or Inf. Called on every rank (as mmengine's hooks do); rank 0 writes."""
        final = osp.join(out_dir, filename)
        bad = nonfinite_tensors(self.model.module if is_model_wrapper(self.model) else self.model)
        if bad:
            names = ', '.join(bad[:5]) + (f' and {len(bad) - 5} more' if len(bad) > 5 else '')
            raise NonFiniteCheckpointError(
                f'Refusing to write checkpoint {final}: the model holds NaN or Inf in {names}. '
                f'The earlier checkpoints in {out_dir} are kept; fix the cause (lower learning '
                'rate, optim_wrapper.clip_grad, bad annotations) and continue from the last good '
                'one with --resume.'
            )
        diverged = diverged_tensors(
            self.model.module if is_model_wrapper(self.model) else self.model
        )
        if diverged and is_main_process():
            names = ', '.join(diverged[:5]) + (
                f' and {len(diverged) - 5} more' * (len(diverged) > 5)
            )
            self.logger.warning(
                f'Writing checkpoint {final}, but training has diverged: {names} hold values above '
                f'{DIVERGED_WEIGHT:g} in magnitude. Lower the learning rate or clip gradients '
                '(optim_wrapper.clip_grad), and continue from an earlier checkpoint.'
            )
        if not is_main_process():
            return
        if '://' in str(out_dir):  # remote storage: leave it to the backend
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)

        def write(tmp_path: str) -> None:
            super(Runner, self).save_checkpoint(
                osp.dirname(tmp_path), osp.basename(tmp_path), *args, **kwargs
            )

        save_atomically(write, final)
