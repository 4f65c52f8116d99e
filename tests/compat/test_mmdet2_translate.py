"""Translation of each mmdetection 2.x setting into instseg's native keys, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.registry import init_default_scope

from instseg.compat.mmdet2 import Config2xError, UpgradeWarning, find_2x_markers, translate_2x
from instseg.compat.mmdet2.pipeline import translate_pipeline
from instseg.compat.mmdet2.report import Report

init_default_scope('instseg')

NORM = dict(type='Normalize', mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], to_rgb=True)
TRAIN = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', img_scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', flip_ratio=0.5),
    NORM,
    dict(type='Pad', size_divisor=32),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_masks']),
]
INNER = [
    dict(type='Resize', keep_ratio=True),
    dict(type='RandomFlip'),
    NORM,
    dict(type='Pad', size_divisor=32),
    dict(type='ImageToTensor', keys=['img']),
    dict(type='Collect', keys=['img']),
]
TEST = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiScaleFlipAug', img_scale=(1333, 800), flip=False, transforms=INNER),
]


def _dataset(split: str, pipeline: list) -> dict:
    return dict(
        type='CocoDataset',
        ann_file=f'data/x/annotations/{split}.json',
        img_prefix=f'data/x/{split}/',
        pipeline=pipeline,
    )


def old(**keys) -> dict:
    """A small complete 2.x config; ``keys`` replace its top-level keys."""
    cfg = dict(
        model=dict(
            type='MaskRCNN',
            backbone=dict(type='ResNet', depth=18),
            test_cfg=dict(rcnn=dict(nms=dict(type='nms', iou_threshold=0.6), max_per_img=50)),
        ),
        data_root='data/x/',
        data=dict(
            samples_per_gpu=4,
            workers_per_gpu=1,
            train=_dataset('train', TRAIN),
            val=_dataset('val', TEST),
            test=_dataset('test', TEST),
        ),
        evaluation=dict(metric=['bbox', 'segm']),
        optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
        optimizer_config=dict(grad_clip=None),
        lr_config=dict(policy='step', step=[8, 11]),
        runner=dict(type='EpochBasedRunner', max_epochs=12),
    )
    cfg.update(keys)
    return cfg


def translate(**keys) -> dict:
    return translate_2x(old(**keys), source='old.py')[0].to_dict()


def steps(pipeline: list, test: bool = False) -> list[dict]:
    return translate_pipeline(pipeline, 'data.train.pipeline', Report('old.py'), test=test)


@pytest.mark.parametrize(
    ('resize', 'expected'),
    [
        (dict(img_scale=(800, 1333)), dict(type='Resize', scale=(1333, 800), keep_ratio=True)),
        (
            dict(img_scale=(512, 256), keep_ratio=False, bbox_clip_border=False),
            dict(type='Resize', scale=(512, 256), keep_ratio=False, clip_object_border=False),
        ),
        (
            dict(img_scale=(1333, 800), ratio_range=(0.5, 2.0)),
            dict(type='RandomResize', scale=(1333, 800), ratio_range=(0.5, 2.0), keep_ratio=True),
        ),
        (
            dict(img_scale=[(640, 1333), (1333, 800)]),  # 'range': long and short edge ranges
            dict(type='RandomResize', scale=[(1333, 640), (1333, 800)], keep_ratio=True),
        ),
        (
            dict(img_scale=[(1333, 640), (1333, 800)], multiscale_mode='value'),
            dict(type='RandomChoiceResize', scales=[(1333, 640), (1333, 800)], keep_ratio=True),
        ),
    ],
)
def test_resize_arguments_become_native_resizes(resize: dict, expected: dict) -> None:
    assert steps([dict(type='Resize', **resize)]) == [expected]


def test_flip_crop_and_formatting_steps() -> None:
    out = steps(
        [
            dict(type='LoadImageFromFile', file_client_args=dict(backend='disk')),
            dict(type='RandomFlip', flip_ratio=[0.3, 0.2], direction=['horizontal', 'vertical']),
            dict(type='RandomCrop', crop_size=(300, 400)),  # 2.x: (h, w)
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600)),
            dict(type='PhotoMetricDistortion', brightness_delta=16),
            NORM,
            dict(type='Pad', size_divisor=32),
            dict(type='DefaultFormatBundle'),
            dict(type='Collect', keys=['img'], meta_keys=('filename', 'ori_shape', 'img_norm_cfg')),
        ]
    )
    assert out == [
        dict(type='LoadImageFromFile', backend_args=None),
        dict(type='RandomFlip', prob=[0.3, 0.2], direction=['horizontal', 'vertical']),
        dict(type='RandomCrop', crop_size=(400, 300)),  # native: (w, h)
        dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600)),
        dict(type='PhotoMetricDistortion', brightness_delta=16),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape')),
    ]


def test_normalize_and_pad_move_to_the_data_preprocessor() -> None:
    cfg = translate()
    assert cfg['model']['data_preprocessor'] == dict(
        type='DetDataPreprocessor',
        mean=[1.0, 2.0, 3.0],
        std=[4.0, 5.0, 6.0],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    )
    assert [s['type'] for s in cfg['train_dataloader']['dataset']['pipeline']] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'PackDetInputs',
    ]  # fmt: skip
    # a test pipeline normalising differently from training cannot share one preprocessor
    inner = [*INNER[:2], dict(NORM, mean=[0.0, 0.0, 0.0]), *INNER[3:]]
    other = [TEST[0], dict(TEST[1], transforms=inner)]
    data = dict(old()['data'], val=_dataset('val', other))
    with pytest.raises(Config2xError, match=r'data\.val\.pipeline.*Normalize'):
        translate(data=data)


def test_multi_scale_flip_test_becomes_plain_test_and_tta() -> None:
    aug = dict(
        type='MultiScaleFlipAug', img_scale=[(1333, 800), (666, 400)], flip=True, transforms=INNER
    )
    data = dict(old()['data'], test=_dataset('test', [TEST[0], aug]))
    with pytest.warns(UpgradeWarning, match='--tta'):
        cfg = translate(data=data)
    assert cfg['test_dataloader']['dataset']['pipeline'][1:] == [
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                              'scale_factor')),
    ]  # fmt: skip
    (load, tta) = cfg['tta_pipeline']
    assert load == dict(type='LoadImageFromFile', backend_args=None)
    scales, flips, (pack,) = tta['transforms']
    assert tta['type'] == 'TestTimeAug'
    assert [s['scale'] for s in scales] == [(1333, 800), (666, 400)]
    assert flips == [
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='RandomFlip', prob=0.0),
    ]
    assert pack['meta_keys'][-2:] == ('flip', 'flip_direction')
    # views are merged with the model's own test NMS, as 2.x's aug_test did
    assert cfg['tta_model'] == dict(
        type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.6), max_per_img=50)
    )


def test_data_becomes_dataloaders_with_wrappers(tmp_path: Path) -> None:
    names = tmp_path / 'classes.txt'
    names.write_text('cat\ndog\n')
    train = dict(
        type='RepeatDataset',
        times=3,
        dataset=dict(
            type='CocoDataset',
            ann_file=['data/x/a.json', 'data/x/b.json'],
            img_prefix=['data/x/a/', 'data/x/b/'],
            classes=str(names),
            pipeline=TRAIN,
        ),
    )
    val = dict(_dataset('val', TEST), samples_per_gpu=2)
    cfg = translate(data=dict(samples_per_gpu=8, workers_per_gpu=0, train=train, val=val))
    loader = cfg['train_dataloader']
    assert (loader['batch_size'], loader['num_workers'], loader['persistent_workers']) == (
        8,
        0,
        False,
    )
    assert loader['sampler'] == dict(type='DefaultSampler', shuffle=True)
    repeat = loader['dataset']
    assert (repeat['type'], repeat['times']) == ('RepeatDataset', 3)
    first, second = repeat['dataset']['datasets']
    assert repeat['dataset']['type'] == 'ConcatDataset'
    assert first['data_root'] == 'data/x/' and first['ann_file'] == 'a.json'
    assert second['data_prefix'] == dict(img='b/')
    assert first['metainfo'] == dict(classes=('cat', 'dog'))
    assert first['filter_cfg'] == dict(filter_empty_gt=True, min_size=32)
    val_loader = cfg['val_dataloader']
    assert val_loader['batch_size'] == 2 and val_loader['dataset']['test_mode'] is True
    assert 'test_dataloader' not in cfg
    assert cfg['test_evaluator'] == cfg['val_evaluator']


def test_evaluation_becomes_evaluator_interval_and_best_checkpoint() -> None:
    cfg = translate(
        evaluation=dict(interval=2, metric=['bbox', 'segm'], save_best='segm_mAP', classwise=True)
    )
    assert cfg['val_evaluator'] == dict(
        type='CocoMetric',
        ann_file='data/x/annotations/val.json',
        metric=['bbox', 'segm'],
        classwise=True,
        backend_args=None,
    )
    assert cfg['test_evaluator']['ann_file'] == 'data/x/annotations/test.json'
    assert cfg['train_cfg'] == dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=2)
    assert cfg['default_hooks']['checkpoint']['save_best'] == 'coco/segm_mAP'
    assert (cfg['val_cfg'], cfg['test_cfg']) == (dict(type='ValLoop'), dict(type='TestLoop'))


def test_iter_based_runner_counts_everything_in_iterations() -> None:
    cfg = translate(
        runner=dict(type='IterBasedRunner', max_iters=9000),
        lr_config=dict(policy='poly', power=0.9, min_lr=1e-4, warmup='linear', warmup_iters=100),
        checkpoint_config=dict(interval=1000),
        evaluation=dict(interval=1000, metric='segm'),
    )
    assert cfg['train_cfg'] == dict(type='IterBasedTrainLoop', max_iters=9000, val_interval=1000)
    assert cfg['param_scheduler'][1] == dict(
        type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=9000, by_epoch=False
    )
    assert cfg['train_dataloader']['sampler']['type'] == 'InfiniteSampler'
    assert cfg['default_hooks']['checkpoint'] == dict(
        type='CheckpointHook', interval=1000, by_epoch=False
    )
    assert cfg['log_processor']['by_epoch'] is False
    assert cfg['val_evaluator']['metric'] == 'segm'


@pytest.mark.parametrize(
    ('keys', 'match'),
    [
        (dict(momentum_config=dict(policy='cyclic')), 'momentum_config'),
        (dict(lr_config=dict(policy='CosineRestart', periods=[5])), 'CosineRestart'),
        (dict(lr_config=dict(policy='step', step=[8], min_lr=0.01)), r'min_lr=0\.01'),
        (dict(lr_config=dict(policy='step', step=[8], foo=1)), r'lr_config\.foo'),
        (dict(runner=dict(type='MyRunner', max_epochs=3)), 'MyRunner'),
        (dict(evaluation=dict(metric='mAP')), "'mAP'"),
        (dict(optimizer_config=dict(type='MyOptimizerHook')), 'MyOptimizerHook'),
        (dict(model=dict(type='MaskRCNN', pretrained='a.pth',
                         backbone=dict(type='ResNet', depth=18, init_cfg=dict(type='Pretrained',
                                                                            checkpoint='b.pth')))),
         'pretrained'),
    ],
)  # fmt: skip
def test_settings_that_would_change_the_run_are_errors(keys: dict, match: str) -> None:
    with pytest.raises(Config2xError, match=match) as info:
        translate(**keys)
    assert str(info.value).startswith('old.py: ')


def test_unknown_keys_and_types_warn_by_name() -> None:
    pipeline = [*TRAIN[:4], dict(type='MyAugment', p=1), *TRAIN[4:]]
    data = dict(old()['data'], train=_dataset('train', pipeline), shuffle_seed=3)
    with pytest.warns(UpgradeWarning) as record:
        cfg = translate(
            data=data,
            evaluation=dict(metric='bbox', gpu_collect=True, foo=1),
            checkpoint_config=dict(interval=1, bar=2),
        )
    messages = ' '.join(str(w.message) for w in record)
    assert 'evaluation.foo' in messages and 'checkpoint_config.bar' in messages
    assert 'data.shuffle_seed' in messages
    assert "'MyAugment'" in messages and 'not registered' in messages
    assert dict(type='MyAugment', p=1) in cfg['train_dataloader']['dataset']['pipeline']
    assert cfg['val_evaluator']['collect_device'] == 'gpu'


def test_runtime_keys_go_to_their_native_places() -> None:
    with pytest.warns(UpgradeWarning) as record:
        cfg = translate(
            checkpoint_config=dict(interval=2, max_keep_ckpts=3, create_symlink=False),
            log_config=dict(
                interval=20,
                hooks=[
                    dict(type='TextLoggerHook'),
                    dict(type='TensorboardLoggerHook'),
                    dict(type='WandbLoggerHook', init_kwargs=dict(project='p')),
                ],
            ),
            custom_hooks=[dict(type='NumClassCheckHook')],
            resume_from='work_dirs/x/epoch_3.pth',
            load_from='other.pth',
            seed=7,
            deterministic=True,
            dist_params=dict(backend='gloo'),
            workflow=[('train', 1), ('val', 1)],
            gpu_ids=[0, 1],
            find_unused_parameters=True,
            opencv_num_threads=0,
            mp_start_method='spawn',
        )
    assert cfg['default_hooks']['checkpoint'] == dict(
        type='CheckpointHook', interval=2, max_keep_ckpts=3
    )
    assert cfg['default_hooks']['logger'] == dict(type='LoggerHook', interval=20)
    assert [b['type'] for b in cfg['visualizer']['vis_backends']] == [
        'LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend',
    ]  # fmt: skip
    assert cfg['visualizer']['vis_backends'][2]['init_kwargs'] == dict(project='p')
    assert 'custom_hooks' not in cfg
    assert (cfg['load_from'], cfg['resume']) == ('work_dirs/x/epoch_3.pth', True)
    assert cfg['randomness'] == dict(seed=7, deterministic=True)
    assert cfg['env_cfg']['dist_cfg'] == dict(backend='gloo')
    assert cfg['env_cfg']['mp_cfg'] == dict(mp_start_method='spawn', opencv_num_threads=0)
    assert cfg['model_wrapper_cfg'] == dict(find_unused_parameters=True)
    messages = ' '.join(str(w.message) for w in record)
    assert 'workflow' in messages and 'gpu_ids=[0, 1]' in messages
    assert cfg['default_scope'] == 'instseg'


def test_model_keys_of_older_2x_versions() -> None:
    model = dict(
        type='MaskRCNN',
        pretrained='torchvision://resnet50',
        backbone=dict(type='ResNet', depth=50, use_checkpoint=True),
    )
    cfg = translate(
        model=model,
        train_cfg=dict(rpn_proposal=dict(nms_pre=2000, nms_post=1000, max_num=1000, nms_thr=0.7)),
        test_cfg=dict(rpn=dict(nms_pre=1000, max_num=500, nms_thr=0.6), rcnn=dict(score_thr=0.05)),
    )
    backbone = cfg['model']['backbone']
    assert backbone['with_cp'] is True and 'use_checkpoint' not in backbone
    assert backbone['init_cfg'] == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    assert 'pretrained' not in cfg['model']
    assert cfg['model']['train_cfg']['rpn_proposal'] == dict(
        nms_pre=2000, nms=dict(type='nms', iou_threshold=0.7), max_per_img=1000
    )
    assert cfg['model']['test_cfg']['rpn']['max_per_img'] == 500
    assert cfg['train_cfg']['type'] == 'EpochBasedTrainLoop'  # the loop took the key's place
    assert list(cfg['model'])[:2] == ['type', 'data_preprocessor']


def test_markers() -> None:
    assert find_2x_markers(dict(model=dict(type='MaskRCNN'), train_cfg=dict(max_epochs=1))) == []
    found = find_2x_markers(old())
    assert 'lr_config=' in found and any('MultiScaleFlipAug' in m for m in found)
