"""Train a few iterations and evaluate on the real datasets in ../shared/data."""

from __future__ import annotations

import math
from pathlib import Path

from mmengine.config import Config

from instseg.engine import Runner

ROOT = Path(__file__).resolve().parents[2]
SMALL_MODEL = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=None, out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=1, in_channels=32, conv_out_channels=32),
    ),
)


def _config(data_root: Path, ann: dict, img: dict, scale: tuple, work_dir: Path, **model) -> Config:
    cfg = Config.fromfile(ROOT / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py')
    cfg.merge_from_dict(dict(model=SMALL_MODEL))
    cfg.merge_from_dict(dict(model=model))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                              'scale_factor')),
    ]  # fmt: skip
    for split, pipeline in (('train', train_pipeline), ('val', test_pipeline)):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.pop('batch_sampler', None)
        loader.dataset.update(
            data_root=str(data_root),
            ann_file=ann[split],
            data_prefix=dict(img=img[split]),
            pipeline=pipeline,
            indices=2,  # the first two images: a smoke run, not a benchmark
            serialize_data=False,
        )
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = str(data_root / ann['val'])
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
    cfg.optim_wrapper.optimizer.lr = 0.001
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    return cfg


def _train_and_validate(cfg: Config) -> dict:
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 1 and all(math.isfinite(v) for v in losses)
    return runner.val_loop.run()


def test_coco_tiny_trains_and_evaluates(coco_tiny: Path, tmp_path: Path) -> None:
    cfg = _config(
        coco_tiny,
        ann={'train': 'annotations/instances_train2017.json',
             'val': 'annotations/instances_val2017.json'},
        img={'train': 'train2017/', 'val': 'val2017/'},
        scale=(320, 256),
        work_dir=tmp_path,
    )  # fmt: skip
    metrics = _train_and_validate(cfg)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50', 'coco/bbox_mAP_l'):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0 or metrics[key] == -1.0
    assert (tmp_path / 'epoch_1.pth').exists()


def test_nuclei_trains_and_evaluates_with_many_instances(nuclei: Path, tmp_path: Path) -> None:
    cfg = _config(
        nuclei,
        ann={'train': 'annotations/instances_train.json',
             'val': 'annotations/instances_val.json'},
        img={'train': 'images/', 'val': 'images/'},
        scale=(512, 512),
        work_dir=tmp_path,
        roi_head=dict(bbox_head=dict(num_classes=1), mask_head=dict(num_classes=1)),
        test_cfg=dict(rpn=dict(max_per_img=1000), rcnn=dict(max_per_img=1000, score_thr=0.0)),
    )  # fmt: skip
    for split in ('train', 'val'):
        cfg[f'{split}_dataloader'].dataset.metainfo = dict(classes=('nucleus',))
    cfg.val_evaluator.proposal_nums = (100, 1000, 3000)
    metrics = _train_and_validate(cfg)
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
