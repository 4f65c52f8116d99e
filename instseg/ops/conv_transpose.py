"""Transposed convolution with ``torch.nn.functional.conv_transpose2d``'s semantics; on CPU a
fast path computes the non-overlapping case (kernel equal to stride) as one matrix product.

With kernel == stride every input pixel writes its own ``kh x kw`` output block, so the whole op
is ``pixels [N*H*W, C_in] @ weight [C_in, C_out*kh*kw]`` followed by a reshuffle. PyTorch's CPU
transposed conv takes a slower general path (the README's Speed section gives the measured gain)
and returns a contiguous tensor; the fast path's result is channels-last, which the convs after
it prefer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """``F.conv_transpose2d``: x [N, C_in, H, W], weight [C_in, C_out / groups, kh, kw] ->
    [N, C_out, H_out, W_out].

    On CPU, a kernel equal to its stride with no padding, groups or dilation takes
    :func:`conv_transpose2d_as_matmul`; everything else goes to PyTorch.
    """
    stride, padding, output_padding = _pair(stride), _pair(padding), _pair(output_padding)
    dilation = _pair(dilation)
    non_overlapping = (
        tuple(weight.shape[2:]) == stride
        and padding == (0, 0)
        and output_padding == (0, 0)
        and groups == 1
        and dilation == (1, 1)
    )
    if x.device.type == 'cpu' and x.dim() == 4 and non_overlapping:
        return conv_transpose2d_as_matmul(x, weight, bias)
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d_as_matmul(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The fast path of :func:`conv_transpose2d` for stride == kernel size, no padding: one
    matrix product. x [N, C_in, H, W], weight [C_in, C_out, kh, kw], bias [C_out] ->
    channels-last [N, C_out, H*kh, W*kw] in x's dtype."""
    n, c, h, w = x.shape
    if weight.dim() != 4 or weight.size(0) != c:
        raise ValueError(
            f'conv_transpose2d_as_matmul: weight {tuple(weight.shape)} does not fit an input '
            f'with {c} channels (expected [C_in={c}, C_out, kh, kw])'
        )
    _, out_c, kh, kw = weight.shape
    weight = weight.reshape(c, out_c * kh * kw).to(x.dtype)
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    if bias is None:
        blocks = rows @ weight
    else:
        blocks = torch.addmm(bias.to(x.dtype).repeat_interleave(kh * kw), rows, weight)
    # [n, h, w, out_c, kh, kw] -> [n, h, kh, w, kw, out_c]: channels-last [n, out_c, h*kh, w*kw]
    out = blocks.view(n, h, w, out_c, kh, kw).permute(0, 1, 4, 2, 5, 3)
    return out.reshape(n, h * kh, w * kw, out_c).permute(0, 3, 1, 2)
