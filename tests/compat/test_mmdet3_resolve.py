"""mmdetection 3.x's scope, type prefixes, imports and data-preprocessor keywords."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from instseg.compat.mmdet3 import find_3x_markers, resolve_3x
from instseg.engine.config import load_config
from instseg.registry import MODELS

init_default_scope('instseg')

ROOT = Path(__file__).resolve().parents[2]
CONFIGS_3X = ROOT / 'tests' / 'data' / 'configs_3x' / 'configs'
CONVNEXT_3X = CONFIGS_3X / 'convnext' / 'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'


def test_convnext_config_resolves_to_instseg() -> None:
    # custom_imports=['mmpretrain.models'] would fail at load without mmpretrain installed
    assert 'mmpretrain' not in sys.modules
    logger = MMLogger.get_current_instance()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        cfg = load_config(str(CONVNEXT_3X))
    finally:
        logger.removeHandler(handler)
    assert cfg.default_scope == 'instseg'
    assert cfg.model.backbone.type == 'ConvNeXt'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert 'custom_imports' not in cfg
    # the ms-crop pipeline's {{_base_.backend_args}} resolved as in mmengine
    assert cfg.train_dataloader.dataset.pipeline[0] == dict(
        type='LoadImageFromFile', backend_args=None
    )
    out = stream.getvalue()
    lines = [line for line in out.splitlines() if 'written for mmdetection 3.x' in line]
    assert len(lines) == 1, out
    assert "default_scope='mmdet'" in lines[0] and "'mmpretrain.ConvNeXt'" in lines[0]
    assert "custom_imports ['mmpretrain.models']" in lines[0]


def test_prefixes_everywhere_and_other_imports_kept(tmp_path: Path) -> None:
    module = tmp_path / 'my_project_module.py'
    module.write_text('IMPORTED = True\n')
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = Config(
            dict(
                default_scope='mmdet',
                custom_imports=dict(imports=['mmdet.models', 'my_project_module']),
                model=dict(type='mmdet.MaskRCNN', backbone=dict(type='mmpretrain.ConvNeXt')),
                train_pipeline=[dict(type='mmdet.PackDetInputs'), dict(type='mmengine.X')],
            )
        )
        resolved = resolve_3x(cfg, 'cfg.py')
        assert 'my_project_module' in sys.modules
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop('my_project_module', None)
    assert resolved.custom_imports.imports == ['my_project_module']
    assert resolved.model.type == 'MaskRCNN' and resolved.model.backbone.type == 'ConvNeXt'
    # other scopes (mmengine's, which instseg's registries inherit) are left as they are
    assert [s['type'] for s in resolved.train_pipeline] == ['PackDetInputs', 'mmengine.X']


def test_native_config_is_left_alone() -> None:
    cfg = Config.fromfile(ROOT / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py')
    assert find_3x_markers(cfg.to_dict()) == []
    assert resolve_3x(cfg, 'x.py') is cfg


def test_unknown_prefixed_type_names_the_closest_instseg_types() -> None:
    cfg = resolve_3x(Config(dict(model=dict(type='mmpretrain.ConvNext', arch='tiny'))), 'x.py')
    with pytest.raises(KeyError, match=r"Unknown type 'ConvNext'.*ConvNeXt"):
        MODELS.build(cfg.model)


PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1])


@pytest.mark.parametrize(
    'keywords',
    [
        dict(pad_mask=True, mask_pad_value=0),
        dict(pad_mask=False),
        dict(seg_pad_value=255, pad_seg=False),
        dict(boxtype2tensor=True, batch_augments=None),
    ],
)
def test_preprocessor_accepts_mmdet_keywords(keywords: dict) -> None:
    assert MODELS.build(dict(PREPROCESSOR, **keywords)).pad_size_divisor == 32


@pytest.mark.parametrize(
    'keywords, message',
    [
        (dict(pad_mask=True, mask_pad_value=255), r'mask_pad_value=255 .*background'),
        (dict(pad_seg=True), r'pad_seg=True .*semantic-segmentation'),
        (dict(boxtype2tensor=False), r'boxtype2tensor=False .*Tensor\[N, 4\]'),
    ],
)
def test_preprocessor_refuses_what_instseg_cannot_mean(keywords: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(PREPROCESSOR, **keywords))
