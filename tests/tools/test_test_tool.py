"""tools/test.py: --out, --show-dir, result JSON, --format-only, --tta, classwise AP, errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import mmengine
import numpy as np
import pycocotools.mask as mask_util
import pytest
from mmengine.config import Config
from pycocotools.coco import COCO
from tool_helpers import load_tool

CLASSES = ('ellipse', 'rectangle', 'triangle', 'ring')


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_out_pickle_holds_numpy_predictions_and_rle_masks(trained, tested) -> None:
    results = mmengine.load(tested['pkl'])
    gt = _coco(trained['data'] / 'annotations' / 'instances_val.json')
    assert sorted(r['img_id'] for r in results) == sorted(gt.getImgIds())
    for res in results:
        assert 'gt_instances' not in res
        pred = res['pred_instances']
        num = len(pred['scores'])
        assert num > 0
        assert pred['bboxes'].shape == (num, 4) and pred['bboxes'].dtype == np.float32
        assert isinstance(pred['labels'], np.ndarray) and pred['labels'].max() < len(CLASSES)
        assert len(pred['masks']) == num
        img = gt.imgs[res['img_id']]
        assert mask_util.decode(pred['masks']).shape == (img['height'], img['width'], num)
        assert tuple(res['ori_shape']) == (img['height'], img['width'])


def test_show_dir_writes_one_overlay_per_image(trained, tested) -> None:
    overlays = sorted((tested['out'] / 'overlays').glob('*.png'))
    images = sorted((trained['data'] / 'val').glob('*.png'))
    assert [p.stem for p in overlays] == [p.stem for p in images]
    for overlay, image in zip(overlays, images, strict=True):
        drawn = cv2.imread(str(overlay))
        assert drawn is not None and drawn.shape == cv2.imread(str(image)).shape


def test_classwise_ap_is_logged_and_returned(tested) -> None:
    metrics = tested['metrics']
    for name in CLASSES:
        assert f'coco/segm_{name}_precision' in metrics
        assert f'coco/bbox_{name}_precision' in metrics
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
    assert 'Per-class segm AP' in tested['log'] and 'Per-class bbox AP' in tested['log']


def test_result_json_has_rle_masks_and_loads_in_pycocotools(trained, tested) -> None:
    gt = _coco(trained['data'] / 'annotations' / 'instances_val.json')
    for kind in ('bbox', 'segm'):
        records = json.loads((tested['out'] / f'coco.{kind}.json').read_text())
        assert records and {r['image_id'] for r in records} == set(gt.getImgIds())
        assert {r['category_id'] for r in records} <= set(gt.getCatIds())
        with contextlib.redirect_stdout(io.StringIO()):
            loaded = gt.loadRes(records)
        assert len(loaded.anns) == len(records)
    segm = json.loads((tested['out'] / 'coco.segm.json').read_text())
    assert isinstance(segm[0]['segmentation']['counts'], str)  # compressed RLE, JSON-safe
    assert segm[0]['segmentation']['size'] == [96, 96]


def _configured(trained, *extra: str) -> Config:
    tool = load_tool('test.py')
    args = tool.parse_args([str(trained['cfg']), str(trained['ckpt']), *extra])
    cfg = Config.fromfile(trained['cfg'])
    cfg.merge_from_dict(args.cfg_options or {})
    tool.configure(cfg, args)
    return cfg


def test_format_only_switches_evaluation_off(trained, tmp_path: Path) -> None:
    cfg = _configured(
        trained, '--format-only', '--cfg-options', f'test_evaluator.outfile_prefix={tmp_path}/r'
    )
    assert cfg.test_evaluator.format_only is True
    with pytest.raises(ValueError, match='outfile_prefix'):
        _configured(trained, '--format-only')


def test_out_and_show_dir_configure_the_dump_and_the_hook(trained) -> None:
    cfg = _configured(trained, '--out', 'r.pkl', '--show-dir', 'vis', '--score-thr', '0.5')
    assert [e['type'] for e in cfg.test_evaluator] == ['CocoMetric', 'DumpDetResults']
    hook = cfg.default_hooks.visualization
    assert hook.draw and hook.test_out_dir == 'vis' and hook.score_thr == 0.5
    with pytest.raises(ValueError, match='.pkl'):
        _configured(trained, '--out', 'r.json')


def test_tta_swaps_in_the_wrapper_and_pipeline(trained) -> None:
    cfg = _configured(trained, '--tta')
    assert cfg.model.type == 'DetTTAModel' and cfg.model.module.type == 'MaskRCNN'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'


def test_tta_without_tta_settings_names_what_is_missing(trained) -> None:
    tool = load_tool('test.py')
    cfg = Config.fromfile(trained['cfg'])
    cfg.pop('tta_model')
    args = tool.parse_args([str(trained['cfg']), str(trained['ckpt']), '--tta'])
    with pytest.raises(KeyError, match='--tta needs tta_model'):
        tool.configure(cfg, args)


def test_tta_run_evaluates_the_merged_predictions(trained, tmp_path: Path) -> None:
    metrics = load_tool('test.py').main(
        [
            str(trained['cfg']), str(trained['ckpt']), '--tta', '--eval', 'segm',
            '--work-dir', str(tmp_path), '--cfg-options', 'experiment_name=tools_tta',
        ]
    )  # fmt: skip
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0 and 'coco/bbox_mAP' not in metrics


def test_tile_run_of_one_tile_scores_as_the_whole_image_run(
    trained, tested, tmp_path: Path
) -> None:
    cfg = _configured(trained, '--tile', '128', '--tile-overlap', '32')
    assert cfg.model.type == 'TiledInferenceModel' and cfg.model.module.type == 'MaskRCNN'
    assert cfg.model.tile_size == 128 and cfg.model.overlap == 32
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == ['PackDetInputs']
    # the 96 px val images fit one 128 px tile: the same predictions, the same AP
    metrics = load_tool('test.py').main(
        [
            str(trained['cfg']), str(trained['ckpt']), '--tile', '128', '--tile-overlap', '32',
            '--eval', 'bbox', 'segm',
            '--work-dir', str(tmp_path / 'one'), '--cfg-options', 'experiment_name=tools_tile1',
        ]
    )  # fmt: skip
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert metrics[key] == tested['metrics'][key]
    tiled = load_tool('test.py').main(
        [
            str(trained['cfg']), str(trained['ckpt']), '--tile', '64', '--tile-overlap', '32',
            '--eval', 'segm', '--work-dir', str(tmp_path / 'four'),
            '--cfg-options', 'experiment_name=tools_tile4',
        ]
    )  # fmt: skip
    assert 0.0 <= tiled['coco/segm_mAP'] <= 1.0
    with pytest.raises(ValueError, match='--tta and --tile cannot be combined'):
        _configured(trained, '--tta', '--tile', '64')


def test_checkpoint_of_another_model_is_refused_with_the_key(trained, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r'does not fit the model.*fc_cls\.weight'):
        load_tool('test.py').main(
            [
                str(trained['cfg']), str(trained['ckpt']), '--work-dir', str(tmp_path),
                '--cfg-options', 'model.roi_head.bbox_head.num_classes=6',
                'model.roi_head.mask_head.num_classes=6', 'experiment_name=tools_mismatch',
            ]
        )  # fmt: skip


def test_missing_checkpoint_is_named(trained, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_tool('test.py').main([str(trained['cfg']), str(tmp_path / 'nope.pth')])


def test_help_has_an_example() -> None:
    tool = load_tool('test.py')
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        tool.parse_args(['--help'])
    assert 'python tools/test.py' in out.getvalue() and '--show-dir' in out.getvalue()
