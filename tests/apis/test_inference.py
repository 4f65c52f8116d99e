"""init_detector / inference_detector: loading, inputs (paths, arrays, lists) and errors."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from instseg.apis import check_checkpoint_fits, inference_detector, init_detector

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ('ellipse', 'rectangle', 'triangle', 'ring')


def _tiny_config(tmp: Path) -> Path:
    spec = importlib.util.spec_from_file_location('apis_tiny', ROOT / 'tests' / 'e2e' / 'tiny.py')
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    return tiny.write_tiny_config(tmp)


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    """The tiny demo config, a checkpoint of its (untrained) model and two images."""
    tmp = tmp_path_factory.mktemp('apis')
    cfg = _tiny_config(tmp)
    model = init_detector(cfg)
    ckpt = tmp / 'model.pth'
    meta = dict(dataset_meta=dict(classes=('a', 'b', 'c', 'd'), palette=[(1, 2, 3)] * 4))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), ckpt)
    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(96, 96), (96, 96), (80, 112)]):
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.circle(image, (w // 2, h // 2), 20, (0, 0, 255), -1)
        path = tmp / f'img{i}.png'
        cv2.imwrite(str(path), image)
        images.append(path)
    return dict(tmp=tmp, cfg=cfg, ckpt=ckpt, state=model.state_dict(), images=images)


@pytest.fixture(scope='module')
def model(setup):
    return init_detector(setup['cfg'], setup['ckpt'])


def test_init_detector_loads_weights_meta_and_config(setup, model) -> None:
    assert not model.training
    for key, value in setup['state'].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.dataset_meta['classes'] == (
        'a',
        'b',
        'c',
        'd',
    )  # the checkpoint's, not the config's
    assert model.cfg.model.type == 'MaskRCNN'
    from_cfg = init_detector(Config.fromfile(setup['cfg']), setup['ckpt'])
    assert torch.equal(
        from_cfg.roi_head.bbox_head.fc_cls.weight, model.roi_head.bbox_head.fc_cls.weight
    )


def test_classes_come_from_the_config_without_checkpoint_meta(setup) -> None:
    bare = setup['tmp'] / 'bare.pth'
    torch.save(dict(state_dict=setup['state']), bare)
    model = init_detector(setup['cfg'], bare)
    assert tuple(model.dataset_meta['classes']) == CLASSES


def test_path_array_and_list_give_the_same_predictions(setup, model) -> None:
    path = setup['images'][0]
    from_file = inference_detector(model, path)
    from_array = inference_detector(model, cv2.imread(str(path)))
    pred = from_file.pred_instances
    assert len(pred) > 0 and pred.masks.shape == (len(pred), 96, 96)
    assert torch.equal(pred.bboxes, from_array.pred_instances.bboxes)
    assert torch.equal(pred.masks.to_tensor(), from_array.pred_instances.masks.to_tensor())
    batch = inference_detector(
        model, [str(path), cv2.imread(str(setup['images'][1]))], batch_size=2
    )
    single = inference_detector(model, setup['images'][1])
    assert isinstance(batch, list) and len(batch) == 2
    # a padded batch of two sums in another order than one image: pixel coordinates agree to 1e-4
    torch.testing.assert_close(batch[0].pred_instances.bboxes, pred.bboxes, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(batch[1].pred_instances.scores, single.pred_instances.scores)


def test_masks_come_at_each_images_own_size(setup, model) -> None:
    results = inference_detector(model, [setup['images'][0], setup['images'][2]])
    assert results[0].pred_instances.masks.shape[1:] == (96, 96)
    assert results[1].pred_instances.masks.shape[1:] == (80, 112)
    assert results[1].ori_shape == (80, 112)


def test_missing_files_are_named(setup, model) -> None:
    with pytest.raises(FileNotFoundError, match='nope.py'):
        init_detector(setup['tmp'] / 'nope.py')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        init_detector(setup['cfg'], setup['tmp'] / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.png'):
        inference_detector(model, setup['tmp'] / 'nope.png')


def test_checkpoint_for_another_model_names_the_differing_weights(setup) -> None:
    with pytest.raises(
        ValueError, match=r'does not fit the model.*fc_cls\.weight: checkpoint \(5, 256\)'
    ):
        init_detector(
            setup['cfg'],
            setup['ckpt'],
            cfg_options={
                'model.roi_head.bbox_head.num_classes': 6,
                'model.roi_head.mask_head.num_classes': 6,
            },
        )
    with pytest.raises(ValueError, match='model weights are missing'):
        init_detector(setup['cfg'], setup['ckpt'], cfg_options={'model.backbone.depth': 34})


def test_check_checkpoint_fits_warns_about_unused_weights() -> None:
    model = torch.nn.Linear(2, 3)
    state = dict(model.state_dict(), extra=torch.zeros(1))
    with pytest.warns(UserWarning, match='1 weights the model of cfg.py does not use'):
        check_checkpoint_fits(model, state, 'x.pth', 'cfg.py')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        check_checkpoint_fits(model, model.state_dict(), 'x.pth', 'cfg.py')


def test_missing_batchnorm_counters_are_tolerated() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    state = {k: v for k, v in model.state_dict().items() if 'num_batches_tracked' not in k}
    check_checkpoint_fits(model, state, 'converted.pth')
    del state['1.running_mean']
    with pytest.raises(ValueError, match=r'1 model weights are missing \(1\.running_mean\)'):
        check_checkpoint_fits(model, state, 'converted.pth')


def test_tiled_inference_of_one_tile_equals_whole_image_inference(setup, model) -> None:
    path = setup['images'][2]  # 80 x 112
    whole = inference_detector(model, path).pred_instances
    one_tile = inference_detector(model, path, tile=dict(size=128, overlap=16, progress=False))
    assert one_tile.metainfo['tiles'] == 1 and one_tile.ori_shape == (80, 112)
    pred = one_tile.pred_instances
    assert len(pred) == len(whole) > 0
    torch.testing.assert_close(pred.bboxes, whole.bboxes)
    assert torch.equal(pred.masks.to_tensor(), whole.masks.to_tensor())
    tiles = inference_detector(model, [path], batch_size=3, tile=dict(size=48, overlap=16))
    assert tiles[0].metainfo['tiles'] == 2 * 3 and tiles[0].pred_instances.masks.shape[1:] == (
        80,
        112,
    )
    with pytest.raises(KeyError, match='tile takes size'):
        inference_detector(model, path, tile=dict(size=48, stride=32))
