"""Memory: CPU assignment for crowded images and lazy masks (the benchmark: tests/tools)."""

from __future__ import annotations

import importlib.util
import tracemalloc
from pathlib import Path

import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from instseg.models.task_modules.assigners.max_iou_assigner import MaxIoUAssigner
from instseg.registry import MODELS
from instseg.structures.masks import BaseInstanceMasks, RLEMasks

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py'
init_default_scope('instseg')


def _memory_benchmark():
    """The module of ``tools/analysis_tools/benchmark.py memory`` (its crowded test batch)."""
    path = ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'
    spec = importlib.util.spec_from_file_location('benchmark_tool', path)
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    return entry.subcommand_module('memory')


class _Tracked(torch.Tensor):
    """A tensor that counts ``.cpu()`` calls (on a CPU-only host the move cannot be seen)."""

    moves = 0

    def cpu(self, *args, **kwargs):
        _Tracked.moves += 1
        return super().cpu(*args, **kwargs)


def _boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    return torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=g) * 60], dim=1)


@pytest.mark.parametrize(('num_gts', 'moved'), [(5, False), (6, True), (40, True)])
def test_gpu_assign_thr_assigns_on_cpu_above_the_threshold(num_gts: int, moved: bool) -> None:
    priors, gts = _boxes(300, 0), _boxes(num_gts, 1)
    labels = torch.arange(num_gts) % 3
    kwargs = dict(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0)
    expected = MaxIoUAssigner(**kwargs).assign(priors, gts, labels)
    _Tracked.moves = 0
    result = MaxIoUAssigner(gpu_assign_thr=5, **kwargs).assign(
        torch.Tensor._make_subclass(_Tracked, priors), gts, labels
    )
    assert (_Tracked.moves > 0) == moved
    assert torch.equal(result.gt_inds, expected.gt_inds)
    assert torch.equal(result.labels, expected.labels)
    assert torch.equal(result.max_overlaps, expected.max_overlaps)
    assert result.gt_inds.device == priors.device and (expected.gt_inds > 0).any()


def test_training_step_with_500_instances_never_builds_full_masks(monkeypatch) -> None:
    size, num = 256, 500
    full_bytes = num * size * size  # one uint8 N x H x W stack: 32.8 MB

    def refuse(*args, **kwargs):
        raise AssertionError('a full N x H x W mask array was requested')

    decode = mask_utils.decode

    def decode_one(rle):
        if isinstance(rle, list) and len(rle) > 1:
            refuse()
        return decode(rle)

    monkeypatch.setattr(RLEMasks, 'to_ndarray', refuse)
    monkeypatch.setattr(BaseInstanceMasks, 'to_tensor', refuse)
    monkeypatch.setattr(mask_utils, 'decode', decode_one)

    cfg = Config.fromfile(DEMO)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    tracemalloc.start()
    try:
        batch = _memory_benchmark().build_batch(size, num, num_classes=4)
        masks = batch['data_samples'][0].gt_instances.masks
        assert isinstance(masks, RLEMasks) and len(masks) == num
        losses = model.train_step(batch, wrapper)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert torch.isfinite(losses['loss_mask']) and losses['loss_mask'] > 0
    # numpy allocations are traced: the whole step stays far below one N x H x W stack
    assert peak < full_bytes / 4, f'numpy peak {peak / 2**20:.1f} MiB'
