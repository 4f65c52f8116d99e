"""Fixtures for the tool tests: one tiny training run and one tools/test.py run per worker.

The training run uses TensorBoard, draws validation predictions and has a TTA setup, so the
same run feeds the log, curve, TensorBoard and test tool tests.
"""

from __future__ import annotations

import pytest
from tool_helpers import ROOT, load_module, load_tool

TOOLS_EXTRA = """
visualizer = dict(
    vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
default_hooks = dict(visualization=dict(draw=True, interval=1))
tta_model = dict(
    type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(96, 96), keep_ratio=True),
         dict(type='Resize', scale=(128, 128), keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])]
"""


@pytest.fixture(scope='session')
def trained(tmp_path_factory) -> dict:
    """A 2-epoch tiny run: ``cfg``, ``work_dir``, ``ckpt`` (epoch 2), ``log`` (scalars.json)."""
    tmp = tmp_path_factory.mktemp('tools_run')
    tiny = load_module(ROOT / 'tests' / 'e2e' / 'tiny.py', 'tools_tiny')
    cfg = tiny.write_tiny_config(tmp, num_train=4, num_val=2, epochs=2, extra=TOOLS_EXTRA)
    work_dir = tmp / 'work'
    # In-process (a subprocess would pay the imports again); a distinct experiment name keeps
    # this run's logger and visualizer apart from other runners in the same process.
    load_tool('train.py').main(
        [str(cfg), '--work-dir', str(work_dir), '--cfg-options', 'experiment_name=tools_train']
    )
    (log,) = work_dir.glob('*/vis_data/scalars.json')
    return dict(
        tmp=tmp,
        cfg=cfg,
        work_dir=work_dir,
        ckpt=work_dir / 'epoch_2.pth',
        log=log,
        data=tmp / 'data',
    )


@pytest.fixture(scope='session')
def tested(trained) -> dict:
    """tools/test.py with --eval, --out, --show-dir, a classwise table and result JSON files."""
    out = trained['tmp'] / 'test_out'
    metrics = load_tool('test.py').main(
        [
            str(trained['cfg']), str(trained['ckpt']),
            '--eval', 'bbox', 'segm', '--out', str(out / 'results.pkl'),
            '--show-dir', str(out / 'overlays'), '--work-dir', str(out / 'work'),
            '--cfg-options', 'test_evaluator.classwise=True',
            f'test_evaluator.outfile_prefix={out / "coco"}', 'experiment_name=tools_test',
        ]
    )  # fmt: skip
    (log,) = (out / 'work').glob('*/*.log')
    return dict(out=out, pkl=out / 'results.pkl', metrics=metrics, log=log.read_text())
