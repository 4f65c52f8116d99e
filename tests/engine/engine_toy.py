"""A toy model, data and metric that run instseg's Runner in well under a second."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from torch.utils.data import DataLoader

import instseg.engine  # noqa: F401  (registers the hooks and the runner)
from instseg.engine import Runner

_names = itertools.count()


class ToyModel(BaseModel):
    """``loss_fit`` fits a linear map; ``loss_extra`` is the output times ``extra[i]`` at global
    iteration i (0 elsewhere), so a NaN there also makes the gradients NaN."""

    def __init__(self, extra: dict[int, float] | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.extra = extra or {}
        self.calls = 0

    def forward(self, inputs: torch.Tensor, mode: str = 'tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            self.calls += 1
            extra = self.extra.get(self.calls, 0.0)
            return dict(loss_fit=(out - 1).pow(2).mean(), loss_extra=(out.mean().abs() + 1) * extra)
        return [dict(score=float(o)) for o in out]


class ScriptedMetric(BaseMetric):
    """Reports ``values[k]`` as ``toy/score`` at the k-th evaluation."""

    default_prefix = 'toy'

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = list(values)
        self.calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results: list) -> dict:
        self.calls += 1
        return dict(score=self.values[self.calls - 1])


def toy_runner(
    work_dir: Path,
    *,
    epochs: int = 2,
    extra: dict[int, float] | None = None,
    default_hooks: dict | None = None,
    val_scores: list[float] | None = None,
    **runner_args,
) -> Runner:
    """A Runner training ``ToyModel`` for ``epochs`` epochs of 4 iterations (batch 2, 8 samples);
    ``runner_args`` go to the Runner (``resume=True``, ``load_from=...``)."""
    data = [torch.randn(2) for _ in range(8)]
    loader = DataLoader(
        data, batch_size=2, collate_fn=lambda batch: dict(inputs=torch.stack(batch))
    )
    val = {}
    if val_scores is not None:
        val = dict(
            val_dataloader=DataLoader(
                data[:2], batch_size=2, collate_fn=lambda b: dict(inputs=torch.stack(b))
            ),
            val_cfg=dict(),
            val_evaluator=Evaluator(ScriptedMetric(val_scores)),
        )
    return Runner(
        model=ToyModel(extra),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=epochs, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), **(default_hooks or {})),
        default_scope='instseg',
        experiment_name=f'toy{next(_names)}',
        **val,
        **runner_args,
    )
