"""Results pickles (tools/test.py --out) are read with an allowlist: a pickle cannot run code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mmengine
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from tool_helpers import ROOT, load_tool

from instseg.apis.results import UnsafeResultsError, load_det_results
from instseg.evaluation.dump_det_results import DumpDetResults
from instseg.structures import DetDataSample

DEMO = str(ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py')


class _Payload:
    """Unpickling this calls ``os.makedirs(path)``: a file-system side effect to look for."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _evil_pickle(tmp_path: Path) -> tuple[Path, Path]:
    created = tmp_path / 'created_by_the_pickle'
    pred = dict(bboxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0))
    record = dict(img_id=1, pred_instances=dict(pred, payload=_Payload(created)))
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps([record]))
    return path, created


@pytest.mark.parametrize('tool', ['confusion_matrix.py', 'analyze_results.py'])
def test_a_malicious_results_pickle_never_runs(tmp_path: Path, tool: str) -> None:
    path, created = _evil_pickle(tmp_path)
    main = load_tool(f'analysis_tools/{tool}').main
    with pytest.raises(UnsafeResultsError, match=r'evil\.pkl.*os\.makedirs|evil\.pkl.*posix'):
        main([DEMO, str(path), str(tmp_path / 'out')])
    assert not created.exists()
    assert not (tmp_path / 'out').exists()


def test_what_tools_test_writes_loads_through_the_allowlist(tmp_path: Path) -> None:
    sample = DetDataSample(metainfo=dict(img_id=7, img_path='a.png', ori_shape=(32, 40),
                                         scale_factor=(1.0, 1.0), flip=False))  # fmt: skip
    masks = torch.zeros(2, 32, 40, dtype=torch.bool)
    masks[0, 2:10, 3:12] = True
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[3.0, 2.0, 12.0, 10.0], [0.0, 0.0, 5.0, 5.0]]),
        scores=torch.tensor([0.9, 0.2]), labels=torch.tensor([1, 0]), masks=masks,
    )  # fmt: skip
    dump = DumpDetResults(out_file_path=str(tmp_path / 'results.pkl'))
    dump.process({}, [sample])
    dump.compute_metrics(dump.results)
    (result,) = load_det_results(str(tmp_path / 'results.pkl'))
    assert result['img_id'] == 7 and result['ori_shape'] == (32, 40)
    np.testing.assert_array_equal(result['pred_instances']['labels'], [1, 0])
    assert result['pred_instances']['scores'].dtype == np.float32
    assert result['pred_instances']['masks'][0]['size'] == [32, 40]
    # numpy scalars and object arrays of plain values are fine too
    path = tmp_path / 'scalars.pkl'
    pred = dict(bboxes=np.zeros((0, 4)), scores=np.float64(0.5), labels=np.array(['a'], object))
    path.write_bytes(pickle.dumps([dict(img_id=np.int64(3), pred_instances=pred)]))
    assert load_det_results(str(path))[0]['img_id'] == 3
    # mmengine.dump writes pickle protocol 2, which names builtins the Python 2 way
    mmengine.dump([dict(img_id=4, tags={'a'}, pred_instances=dict(pred, bboxes=np.zeros(0)))], path)
    assert load_det_results(str(path))[0]['tags'] == {'a'}
