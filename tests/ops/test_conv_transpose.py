"""The matmul transposed conv against PyTorch's: same values, same gradients, dispatch rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from instseg.ops import conv_transpose2d, conv_transpose2d_as_matmul


@pytest.mark.parametrize('kernel', [(2, 2), (3, 3), (2, 3)])
@pytest.mark.parametrize('with_bias', [True, False])
def test_matmul_path_matches_pytorch_values_and_gradients(kernel, with_bias) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 5, 7, generator=g, requires_grad=True)
    weight = torch.randn(6, 4, *kernel, generator=g, requires_grad=True)
    bias = torch.randn(4, generator=g, requires_grad=True) if with_bias else None
    ours = conv_transpose2d_as_matmul(x, weight, bias)
    theirs = F.conv_transpose2d(x, weight, bias, stride=kernel)
    assert ours.shape == (3, 4, 5 * kernel[0], 7 * kernel[1])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grad = torch.randn(ours.shape, generator=g)
    inputs = [x, weight] + ([bias] if with_bias else [])
    for mine, ref in zip(
        torch.autograd.grad(ours, inputs, grad),
        torch.autograd.grad(theirs, inputs, grad),
        strict=True,
    ):
        torch.testing.assert_close(mine, ref, atol=1e-4, rtol=1e-4)


def test_dispatch_takes_the_matmul_path_only_without_overlap() -> None:
    x = torch.randn(2, 3, 4, 4)
    weight = torch.randn(3, 5, 2, 2)
    fast = conv_transpose2d(x, weight, None, stride=2)
    # the matmul path's output is channels-last; PyTorch's CPU kernel returns contiguous NCHW
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert not fast.is_contiguous()
    torch.testing.assert_close(fast, F.conv_transpose2d(x, weight, None, stride=2))
    for kwargs in (dict(stride=1), dict(stride=2, padding=1), dict(stride=2, dilation=2)):
        out = conv_transpose2d(x, weight, None, **kwargs)
        assert out.is_contiguous()
        torch.testing.assert_close(out, F.conv_transpose2d(x, weight, None, **kwargs))
    grouped = torch.randn(3, 1, 2, 2)
    torch.testing.assert_close(
        conv_transpose2d(x, grouped, None, stride=2, groups=3),
        F.conv_transpose2d(x, grouped, None, stride=2, groups=3),
    )


def test_bf16_input_keeps_its_dtype() -> None:
    x = torch.randn(1, 4, 3, 3).bfloat16()
    weight = torch.randn(4, 2, 2, 2)
    out = conv_transpose2d(x, weight, torch.zeros(2), stride=2)
    assert out.dtype == torch.bfloat16
    expected = F.conv_transpose2d(x.float(), weight.bfloat16().float(), stride=2)
    torch.testing.assert_close(out.float(), expected, atol=0.1, rtol=0.05)


def test_mismatched_weight_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match='does not fit an input with 4 channels'):
        conv_transpose2d_as_matmul(torch.randn(1, 4, 3, 3), torch.randn(3, 2, 2, 2))
