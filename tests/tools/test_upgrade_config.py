"""tools/misc/upgrade_config.py: a 2.x config written out as a readable native config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config
from tool_helpers import ROOT, load_tool

from instseg.compat.mmdet2 import find_2x_markers
from instseg.engine.config import load_config

FIXTURES = ROOT / 'tests' / 'data' / 'configs_2x'
OLD = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob('*.py') if '_base_' not in p.parts)
upgrade_tool = load_tool('misc/upgrade_config.py')


@pytest.mark.parametrize('old', OLD, ids=str)
def test_writes_a_native_file_equal_to_the_translation(old: Path, tmp_path: Path) -> None:
    new = tmp_path / 'new.py'
    upgrade_tool.main([str(FIXTURES / old), str(new)])
    text = new.read_text()
    header, path, *lines = text.splitlines()
    assert header.startswith('# Translated from an mmdetection 2.x config')
    assert path == f'# {FIXTURES / old}'
    assert '_base_' not in text and max(len(line) for line in lines) <= 100
    written = Config.fromfile(new)
    assert find_2x_markers(written.to_dict()) == []  # nothing 2.x is left
    # loading the file gives exactly what loading the 2.x config gives
    assert load_config(str(new), work_dir='w').to_dict() == (
        load_config(str(FIXTURES / old), work_dir='w').to_dict()
    )


def test_readable_layout(tmp_path: Path) -> None:
    new = tmp_path / 'new.py'
    upgrade_tool.main([str(FIXTURES / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'), str(new)])
    text = new.read_text()
    keys = [line.split(' = ')[0] for line in text.splitlines() if ' = ' in line and line[0] != ' ']
    assert keys[:2] == ['default_scope', 'model']
    assert keys.index('train_dataloader') < keys.index('optim_wrapper') < keys.index('env_cfg')
    assert (
        "    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),\n" in text
    )
    assert '# - lr_config policy step -> param_scheduler' in text  # the notes head the file


def test_refuses_to_overwrite_or_to_upgrade_a_native_config(tmp_path: Path) -> None:
    old = str(FIXTURES / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py')
    new = tmp_path / 'new.py'
    new.write_text('keep = 1\n')
    with pytest.raises(FileExistsError, match='--force'):
        upgrade_tool.main([old, str(new)])
    assert new.read_text() == 'keep = 1\n'
    upgrade_tool.main([old, str(new), '--force'])
    assert 'optim_wrapper = dict(' in new.read_text()
    native = ROOT / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'
    with pytest.raises(ValueError, match='already a native config'):
        upgrade_tool.main([str(native), str(tmp_path / 'other.py')])
    with pytest.raises(FileNotFoundError, match='missing.py'):
        upgrade_tool.main([str(tmp_path / 'missing.py'), str(tmp_path / 'x.py')])
