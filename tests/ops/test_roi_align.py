"""The CPU sparse-matrix RoIAlign against torchvision's kernel: same values, same gradients;
``roi_align`` dispatches to it for fp32 CPU inputs only."""

from __future__ import annotations

import importlib

import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align

from instseg.ops import roi_align, sparse_roi_align_cpu


def _rois(num: int, size: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * (size + 40) - 20  # some start outside the map
    wh = torch.rand(num, 2, generator=g) * size / 2
    wh[:3] = 0.0  # degenerate boxes
    batch = torch.randint(0, 2, (num, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], 1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('output_size', [(7, 7), (14, 14)])
def test_matches_torchvision_values_and_gradients(aligned, sampling_ratio, output_size) -> None:
    feat = torch.randn(2, 8, 24, 32, requires_grad=True)
    rois = _rois(60, 128.0)
    args = (output_size, 0.25, sampling_ratio, aligned)
    ours, theirs = sparse_roi_align_cpu(feat, rois, *args), tv_roi_align(feat, rois, *args)
    assert ours.shape == (60, 8, *output_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad(ours, feat, grad)
    (g_theirs,) = torch.autograd.grad(theirs, feat, grad)
    assert g_ours.shape == feat.shape
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-4, rtol=1e-4)


def test_large_rois_use_adaptive_grids_per_roi() -> None:
    # RoIs of very different sizes get different sample grids in the same call
    feat = torch.randn(1, 4, 64, 64, requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 8, 8], [0, 2, 3, 250, 190], [0, 10, 10, 60, 250.0]])
    ours = sparse_roi_align_cpu(feat, rois, (7, 7), 0.25, 0, True)
    torch.testing.assert_close(ours, tv_roi_align(feat, rois, (7, 7), 0.25, 0, True))
    ours.sum().backward()
    expected = torch.autograd.grad(tv_roi_align(feat, rois, (7, 7), 0.25, 0, True).sum(), feat)[0]
    torch.testing.assert_close(feat.grad, expected, atol=1e-5, rtol=1e-5)


def test_no_rois_and_other_dtypes_fall_back_to_torchvision() -> None:
    feat = torch.randn(1, 4, 16, 16)
    assert roi_align(feat, torch.zeros(0, 5), (7, 7), 1.0, 2, True).shape == (0, 4, 7, 7)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0]])
    out = roi_align(feat.double(), rois.double(), (7, 7), 1.0, 2, True)
    assert out.dtype == torch.float64


def test_runs_in_fp32_under_bf16_autocast() -> None:
    feat = torch.randn(1, 4, 16, 16, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 40.0, 30.0]])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = roi_align(feat, rois, (7, 7), 0.5, 2, True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, tv_roi_align(feat, rois, (7, 7), 0.5, 2, True))
    out.sum().backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all()


def test_fp32_cpu_inputs_take_the_sparse_path(monkeypatch) -> None:
    # the package's ``roi_align`` attribute is the function, so fetch the module by name
    module = importlib.import_module('instseg.ops.roi_align')
    calls = []
    monkeypatch.setattr(module, 'sparse_roi_align_cpu', lambda *args: calls.append(args) or 0)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0]])
    module.roi_align(torch.randn(1, 4, 16, 16), rois, (7, 7), 1.0, 2, True)
    assert len(calls) == 1
    module.roi_align(torch.randn(1, 4, 16, 16).double(), rois.double(), (7, 7), 1.0, 2, True)
    assert len(calls) == 1


def test_sparse_path_refuses_other_dtypes() -> None:
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match='needs an fp32 CPU feature map, got torch.float64'):
        sparse_roi_align_cpu(torch.randn(1, 4, 16, 16).double(), rois, (7, 7))
