"""A hook recording what each rank of a distributed test run saw (loaded via custom_imports)."""

from __future__ import annotations

import json
import os.path as osp

import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from instseg.registry import HOOKS


@HOOKS.register_module()
class DistProbeHook(Hook):
    """Writes ``out_dir/rank{r}.json``: process group, model wrapper, norm layers, lr and the
    image ids of every training batch, per epoch."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.record: dict = dict(img_ids={})

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.record.update(
            rank=runner.rank,
            world_size=runner.world_size,
            backend=dist.get_backend() if dist.is_initialized() else None,
            wrapper=type(runner.model).__name__,
            find_unused_parameters=getattr(runner.model, 'find_unused_parameters', None),
            sync_bn=sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()),
            bn=sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()),
            lr=runner.optim_wrapper.get_lr()['lr'][0],
        )

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        ids = [int(s.metainfo['img_id']) for s in data_batch['data_samples']]
        self.record['img_ids'].setdefault(str(runner.epoch + 1), []).extend(ids)

    def after_train(self, runner) -> None:
        with open(osp.join(self.out_dir, f'rank{runner.rank}.json'), 'w') as f:
            json.dump(self.record, f)
