"""Tools that write files never replace an existing one without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tool_helpers import ROOT, load_tool

from instseg.engine.config import load_config

DEMO = str(ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py')


def _training_checkpoint(path: Path) -> bytes:
    torch.save(
        dict(meta=dict(epoch=3), state_dict={'head.weight': torch.ones(2)}, optimizer={}), path
    )
    return path.read_bytes()


def test_publish_model_never_replaces_its_input_or_an_existing_file(tmp_path: Path) -> None:
    tool = load_tool('model_converters/publish_model.py')
    ckpt = tmp_path / 'epoch_3.pth'
    original = _training_checkpoint(ckpt)
    with pytest.raises(FileExistsError, match=r'epoch_3\.pth exists \(it is IN\).*--force'):
        tool.main([str(ckpt), str(ckpt)])
    assert ckpt.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_3.pth'
    ]
    # with --force the stripped copy goes to the hashed name; the full checkpoint stays
    final = Path(tool.main([str(ckpt), str(ckpt), '--force']))
    assert final.name.startswith('epoch_3-') and ckpt.read_bytes() == original
    assert set(torch.load(final, weights_only=True)) == {'meta', 'state_dict'}
    # publishing again to the same hashed name needs --force too
    stamp = final.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=final.name):
        tool.main([str(ckpt), str(tmp_path / 'epoch_3')])  # OUT without .pth: same hashed name
    assert final.stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # nothing left staged


def test_convert_checkpoint_refuses_an_existing_destination(tmp_path: Path) -> None:
    tool = load_tool('model_converters/convert_checkpoint.py')
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    original = _training_checkpoint(src)
    dst.write_bytes(b'an earlier conversion')
    with pytest.raises(FileExistsError, match=r'dst\.pth exists; pass --force'):
        tool.main([str(src), str(dst)])
    with pytest.raises(FileExistsError, match=r'src\.pth exists \(it is SRC\)'):
        tool.main([str(src), str(src)])
    assert src.read_bytes() == original and dst.read_bytes() == b'an earlier conversion'


def test_test_tool_refuses_an_existing_out_file(tmp_path: Path) -> None:
    tool = load_tool('test.py')
    out = tmp_path / 'results.pkl'
    out.write_bytes(b'last week')
    args = tool.parse_args([DEMO, 'ckpt.pth', '--out', str(out)])
    with pytest.raises(FileExistsError, match=r'results\.pkl exists; pass --force'):
        tool.configure(load_config(DEMO), args)
    cfg = load_config(DEMO)
    tool.configure(cfg, tool.parse_args([DEMO, 'ckpt.pth', '--out', str(out), '--force']))
    assert cfg.test_evaluator[-1]['out_file_path'] == str(out)
    assert out.read_bytes() == b'last week'  # configuring writes nothing


def test_print_config_refuses_an_existing_save_path(tmp_path: Path, capsys) -> None:
    tool = load_tool('misc/print_config.py')
    saved = tmp_path / 'merged.py'
    saved.write_text('# mine\n')
    with pytest.raises(FileExistsError, match=r'merged\.py exists; pass --force'):
        tool.main([DEMO, '--save-path', str(saved)])
    assert saved.read_text() == '# mine\n'
    tool.main([DEMO, '--save-path', str(saved), '--force'])
    assert 'DemoShapesDataset' in saved.read_text()


def test_split_coco_refuses_existing_outputs_before_writing_either(tmp_path: Path) -> None:
    tool = load_tool('dataset_converters/split_coco.py')
    images = [dict(id=i, file_name=f'{i}.png', height=8, width=8) for i in range(4)]
    coco = dict(images=images, annotations=[], categories=[dict(id=1, name='cell')])
    (tmp_path / 'instances_all.json').write_text(json.dumps(coco))
    (tmp_path / 'instances_val.json').write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match=r'instances_val\.json exists; pass --force'):
        tool.main([str(tmp_path / 'instances_all.json')])
    assert not (tmp_path / 'instances_train.json').exists()
    assert json.loads((tmp_path / 'instances_val.json').read_text()) == {'mine': 1}
    tool.main([str(tmp_path / 'instances_all.json'), '--force'])
    assert len(json.loads((tmp_path / 'instances_val.json').read_text())['images']) == 1
