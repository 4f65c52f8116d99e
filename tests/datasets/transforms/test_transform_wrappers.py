"""RandomChoice / AutoAugment / TestTimeAug, and the shipped ms-crop and TTA pipelines built by
name on a generated COCO-style dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import DefaultScope
from transform_samples import make_results, write_coco

from instseg.datasets import CocoDataset
from instseg.datasets.transforms import AutoAugment, RandomChoice, RandomFlip, Resize
from instseg.registry import TRANSFORMS
from instseg.structures import DetDataSample
from instseg.structures.masks import RLEMasks

ROOT = Path(__file__).resolve().parents[3]
MS_CROP = ROOT / 'configs' / '_base_' / 'datasets' / 'coco_instance_ms_crop.py'
TTA = ROOT / 'configs' / '_base_' / 'tta.py'


def sample(seed: int = 0) -> dict:
    return make_results(np.random.default_rng(seed), 6, 60, 80)


@pytest.mark.parametrize(
    'cfg',
    [
        dict(type='Resize', scale=(40, 30)),
        dict(type='RandomResize', scale=(40, 30), ratio_range=(0.5, 1.5)),
        dict(type='RandomChoiceResize', scales=[(40, 30)]),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Pad', size_divisor=32),
        dict(type='RandomChoice', transforms=[[dict(type='RandomFlip', prob=0.5)]]),
        dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=0.5)]]),
    ],
)
def test_instseg_types_win_over_mmcv_names_in_instseg_scope(cfg: dict) -> None:
    """mmcv registers Resize, Pad, RandomFlip, ... too (without masks); in instseg's default
    scope every registry, mmcv's and mmengine's root included, builds instseg's."""
    import mmcv.transforms

    ours = TRANSFORMS.get(cfg['type'])
    assert ours.__module__.startswith('instseg.')
    with DefaultScope.overwrite_default_scope('instseg'):
        assert type(ROOT_TRANSFORMS.build(dict(cfg))) is ours
        assert type(mmcv.transforms.TRANSFORMS.build(dict(cfg))) is ours


def test_random_choice_follows_its_probabilities() -> None:
    flip, resize = dict(type='RandomFlip', prob=1.0), dict(type='Resize', scale=(40, 30))
    always_resize = RandomChoice(transforms=[[flip], [resize]], prob=[0, 1])
    # Members come from instseg's registry without any default scope.
    assert type(always_resize.transforms[1].transforms[0]) is Resize
    assert type(always_resize.transforms[0].transforms[0]) is RandomFlip
    for _ in range(5):
        out = always_resize(sample())
        assert out['img_shape'] == (30, 40) and 'flip' not in out
        assert (out['gt_masks'].height, out['gt_masks'].width) == (30, 40)
    np.random.seed(0)
    picks = [RandomChoice(transforms=[flip, resize])(sample())['img_shape'] for _ in range(40)]
    assert 10 < picks.count((30, 40)) < 30  # uniform by default; a lone dict is a pipeline
    with pytest.raises(ValueError, match='2 candidates but 1'):
        RandomChoice(transforms=[[flip], [resize]], prob=[1.0])
    with pytest.raises(ValueError, match='sum to 1'):
        RandomChoice(transforms=[[flip], [resize]], prob=[0.5, 0.6])
    with pytest.raises(TypeError, match='config dict or a callable'):
        RandomChoice(transforms=[[42]])


def test_auto_augment_policies() -> None:
    small = [dict(type='Resize', scale=(40, 30))]
    large_flipped = [dict(type='Resize', scale=(160, 120)), dict(type='RandomFlip', prob=1.0)]
    policies = [small, large_flipped]
    aug = TRANSFORMS.build(dict(type='AutoAugment', policies=policies, prob=[0.0, 1.0]))
    assert isinstance(aug, AutoAugment) and aug.policies == policies
    out = aug(sample())
    assert out['img_shape'] == (120, 160) and out['flip'] is True
    np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])
    with pytest.raises(ValueError, match='policy 1'):
        AutoAugment(policies=[[dict(type='RandomFlip', prob=1.0)], []])


def test_test_time_aug_gives_one_view_per_combination() -> None:
    cfg = Config.fromfile(TTA)
    assert cfg.tta_model.type == 'DetTTAModel'
    tta_cfg = cfg.tta_pipeline[1]
    tta_cfg.transforms[0] = [dict(type='Resize', scale=s, keep_ratio=True)
                             for s in [(40, 30), (80, 60), (160, 120)]]  # fmt: skip
    with DefaultScope.overwrite_default_scope('instseg'):
        tta = ROOT_TRANSFORMS.build(tta_cfg)
    results = sample()
    views = tta(dict(results, img_id=3))
    assert sorted(views) == ['data_samples', 'inputs']
    shapes = [tuple(x.shape) for x in views['inputs']]
    assert shapes == [(3, 30, 40)] * 2 + [(3, 60, 80)] * 2 + [(3, 120, 160)] * 2
    metas = [s.metainfo for s in views['data_samples']]
    assert [m['flip'] for m in metas] == [True, False] * 3
    assert [m['scale_factor'] for m in metas][::2] == [(0.5, 0.5), (1.0, 1.0), (2.0, 2.0)]
    assert all(m['ori_shape'] == (60, 80) and m['img_id'] == 3 for m in metas)
    # The input was copied for every view, not modified.
    assert results['img'].shape == (60, 80, 3)
    batch = pseudo_collate([views, views])
    assert len(batch['inputs']) == 6 and len(batch['inputs'][0]) == 2
    assert isinstance(batch['data_samples'][5][1], DetDataSample)


def test_ms_crop_pipeline_from_the_shipped_config(tmp_path: Path) -> None:
    """The Swin 3x recipe (multi-scale resize, or resize + crop + resize) by name."""
    rng = np.random.default_rng(0)
    ann_file = write_coco(tmp_path, rng, [(96, 128), (120, 90), (100, 100)])
    cfg = Config.fromfile(MS_CROP)
    shorts = {s for _, s in cfg.multi_scales}
    with DefaultScope.overwrite_default_scope('instseg'):
        dataset = CocoDataset(
            data_root=str(tmp_path), ann_file=str(ann_file), data_prefix=dict(img='images/'),
            metainfo=dict(classes=('round', 'blob')), pipeline=cfg.train_pipeline,
        )  # fmt: skip
        steps = Compose(cfg.train_pipeline[:-1])
    assert len(dataset) == 3
    choice = steps.transforms[3]
    assert isinstance(choice, RandomChoice)
    crop = choice.transforms[1].transforms[1]
    crops = 0

    def counting(results: dict, original=crop.transform) -> dict | None:
        nonlocal crops
        crops += 1
        return original(results)

    crop.transform = counting
    np.random.seed(0)
    for i in range(12):
        out = steps(dataset.get_data_info(i % 3))
        if out is None:
            continue
        h, w = out['img_shape']
        assert min(h, w) in shorts and out['img'].shape[:2] == (h, w)
        masks, boxes = out['gt_masks'], out['gt_bboxes']
        assert isinstance(masks, RLEMasks) and (masks.height, masks.width) == (h, w)
        assert len(masks) == len(boxes) == len(out['gt_bboxes_labels'])
        if len(boxes):
            assert (masks.areas > 0).all()
            # COCO boxes are polygon extents, up to half a source pixel from the rasterised
            # mask; the recipe upscales these small images several times.
            scale = np.abs(out['homography_matrix'][:2, :2]).max()
            assert np.abs(masks.get_bboxes() - boxes).max() <= 1.0 + 0.5 * scale
    assert 0 < crops < 12  # both branches of the RandomChoice ran
    packed = dataset[0]
    assert packed['inputs'].ndim == 3 and min(packed['inputs'].shape[1:]) in shorts
    gt = packed['data_samples'].gt_instances
    assert gt.bboxes.shape[1] == 4 and len(gt.masks) == len(gt.labels)
