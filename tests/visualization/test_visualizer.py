"""Drawing instances, DetLocalVisualizer and its backends (local PNGs, TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from instseg.registry import VISBACKENDS, VISUALIZERS
from instseg.structures import BitmapMasks, DetDataSample, PredictedMasks
from instseg.visualization import DetLocalVisualizer, draw_instances

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _mask() -> np.ndarray:
    mask = np.zeros((1, 64, 64), dtype=bool)
    mask[0, 10:30, 10:30] = True
    return mask


def test_mask_is_blended_box_is_drawn_rest_untouched() -> None:
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    before = image.copy()
    drawn = draw_instances(
        image,
        bboxes=torch.tensor([[10.0, 10.0, 29.0, 29.0]]),
        labels=torch.tensor([1]),
        scores=torch.tensor([0.9]),
        masks=torch.from_numpy(_mask()),
        classes=['a', 'b'],
        palette=[RED, GREEN],
        alpha=0.5,
        line_width=1,
    )
    assert np.array_equal(image, before)  # the input is not modified
    assert drawn.shape == (64, 64, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[20, 20]) == (50, 178, 50)  # 100 * 0.5 + (0, 255, 0) * 0.5, rounded
    assert tuple(drawn[29, 20]) == GREEN  # the box edge
    assert tuple(drawn[50, 50]) == (100, 100, 100)


def test_compact_masks_draw_as_dense_ones() -> None:
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    dense = np.zeros((2, 64, 80), dtype=bool)
    dense[0, 10:30, 12:40] = True
    dense[1, 40:64, 60:80] = True  # touches the image corner
    kwargs = dict(bboxes=torch.tensor([[12.0, 10, 40, 30], [60, 40, 80, 64]]), line_width=1)
    expected = draw_instances(image, masks=torch.from_numpy(dense), **kwargs)
    drawn = draw_instances(image, masks=PredictedMasks.from_dense(dense), **kwargs)
    np.testing.assert_array_equal(drawn, expected)
    with pytest.raises(ValueError, match=r'masks are \(64, 40\), the image is \(64, 80\)'):
        draw_instances(image, masks=PredictedMasks.from_dense(dense[:, :, :40]), **kwargs)


def test_masks_as_rle_or_container_draw_the_same() -> None:
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    mask = _mask()
    rle = mask_util.encode(np.asfortranarray(mask.transpose(1, 2, 0).astype(np.uint8)))
    common = dict(bboxes=np.array([[10, 10, 29, 29]]), labels=np.array([0]), palette=[RED])
    reference = draw_instances(image, masks=mask, **common)
    assert np.array_equal(draw_instances(image, masks=rle, **common), reference)
    assert np.array_equal(
        draw_instances(image, masks=BitmapMasks(mask, 64, 64), **common), reference
    )


def test_inconsistent_instances_are_refused() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='mask 0 is'):
        draw_instances(
            image, bboxes=np.zeros((1, 4)), labels=[0], masks=np.zeros((1, 32, 32), bool)
        )
    with pytest.raises(ValueError, match='1 instances but 2 labels'):
        draw_instances(image, bboxes=np.zeros((1, 4)), labels=[0, 1])


def _sample(score: float) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(img_path='x.png'))
    boxes = torch.tensor([[10.0, 10.0, 29.0, 29.0]])
    masks = torch.from_numpy(_mask())
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0]), masks=masks)
    sample.pred_instances = InstanceData(
        bboxes=boxes, labels=torch.tensor([0]), scores=torch.tensor([score]), masks=masks
    )
    return sample


def test_add_datasample_puts_ground_truth_left_of_predictions(tmp_path: Path) -> None:
    vis = DetLocalVisualizer()
    vis.dataset_meta = dict(classes=('a',), palette=[RED])
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    out = tmp_path / 'both.png'
    vis.add_datasample('x', image, _sample(0.9), out_file=str(out))
    drawn = cv2.imread(str(out))[..., ::-1]
    assert drawn.shape == (64, 128, 3)
    assert not np.array_equal(drawn[:, :64], drawn[:, 64:])  # the prediction has a score label
    assert tuple(drawn[29, 20]) == RED and tuple(drawn[29, 84]) == RED
    assert np.array_equal(vis.get_image(), drawn)


def test_predictions_below_the_threshold_are_not_drawn(tmp_path: Path) -> None:
    vis = DetLocalVisualizer()
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    vis.add_datasample('x', image, _sample(0.2), draw_gt=False, pred_score_thr=0.3,
                       out_file=str(tmp_path / 'low.png'))  # fmt: skip
    assert np.array_equal(vis.get_image(), image)
    vis.add_datasample('x', image, _sample(0.4), draw_gt=False, pred_score_thr=0.3,
                       out_file=str(tmp_path / 'high.png'))  # fmt: skip
    assert not np.array_equal(vis.get_image(), image)


def test_backends_receive_images_and_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    vis = DetLocalVisualizer(
        name='test_backends',
        vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')],
        save_dir=str(tmp_path),
    )
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    vis.add_datasample('val_img', image, _sample(0.9), draw_gt=False, step=3)
    vis.add_scalars(dict(loss=1.5), step=3)
    vis.close()
    local = tmp_path / 'vis_data' / 'vis_image' / 'val_img_3.png'
    assert cv2.imread(str(local)).shape == (64, 64, 3)
    events = EventAccumulator(str(tmp_path / 'vis_data'), size_guidance={'images': 0})
    events.Reload()
    assert [e.step for e in events.Images('val_img')] == [3]
    assert events.Scalars('loss')[0].value == pytest.approx(1.5)


def test_registries_build_visualizer_and_find_mmengine_backends() -> None:
    with DefaultScope.overwrite_default_scope('instseg'):
        vis = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='from_registry'))
    assert isinstance(vis, DetLocalVisualizer)
    assert VISBACKENDS.get('TensorboardVisBackend') is not None
    with pytest.raises(KeyError, match='DetLocalVisualizer'):
        VISUALIZERS.build(dict(type='DetLocalVisualiser'))
