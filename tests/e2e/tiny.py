"""A tiny variant of the demo config for end-to-end tests, written next to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py'


def write_tiny_config(tmp_path: Path, *, num_train: int = 6, num_val: int = 3, epochs: int = 2,
                      extra: str = '') -> Path:  # fmt: skip
    """A demo config on ``num_train``/``num_val`` generated 96 px images, batch 2, no workers.

    ``extra`` goes into a second file inheriting from the first, so it merges with (rather than
    replaces) the keys set here.
    """
    data_root = tmp_path / 'data'
    cfg = tmp_path / 'tiny_demo.py'
    cfg.write_text(
        f"""_base_ = ['{DEMO}']
data_root = '{data_root}/'
image_size = 96
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, image_size=image_size,
                 num_images=dict(train={num_train}, val={num_val})))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, image_size=image_size,
                 num_images=dict(train={num_train}, val={num_val})))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={epochs})
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
default_hooks = dict(logger=dict(interval=1))
"""
    )
    if not extra:
        return cfg
    child = tmp_path / 'tiny_demo_extra.py'
    child.write_text(f"_base_ = ['{cfg}']\ndata_root = '{data_root}/'\n{extra}")
    return child
