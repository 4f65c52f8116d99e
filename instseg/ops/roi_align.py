"""RoIAlign with torchvision's semantics; on CPU a fast path computes it as one sparse product.

Every output bin of RoIAlign is a fixed weighted sum of at most ``4 x grid_h x grid_w`` input
pixels, so pooling all RoIs at once is ``S @ F``: ``S`` a sparse [R*ph*pw, B*H*W] matrix of
bilinear weights and ``F`` the feature map as [B*H*W, C]. The gradient is ``S^T @ dOut``.
torchvision's CPU backward scatters one channel and one sample at a time on a single thread; the
sparse product runs on all threads and reads each feature row once (the README's Speed section
gives the measured gain and the benchmark that re-measures it). On other devices and dtypes
:func:`roi_align` calls torchvision's kernels as they are.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchvision.ops import roi_align as tv_roi_align


def _axis_samples(
    start: Tensor, length: Tensor, bins: int, grid: int, size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Sample positions along one axis for RoIs sharing ``grid`` samples per bin.

    start, length [R] in feature pixels -> (low, high) LongTensor[R, bins*grid], their bilinear
    weights (w_low, w_high) [R, bins*grid], and ``inside`` BoolTensor (False where torchvision
    ignores a sample because it lies more than one pixel outside the map).
    """
    steps = torch.arange(bins * grid, device=start.device, dtype=start.dtype)
    # bin b, sample i: (b + (i + 0.5) / grid) / bins of the RoI's length
    frac = (torch.div(steps, grid, rounding_mode='floor') + (steps % grid + 0.5) / grid) / bins
    pos = start[:, None] + length[:, None] * frac
    inside = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    frac_high = torch.where(at_edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    return low, high, 1.0 - frac_high, frac_high, inside


def _sampling_entries(
    rois: Tensor,
    feat_shape: tuple[int, int, int, int],
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """COO entries (bin row, pixel column, weight) of the sampling matrix for ``rois`` [R, 5]."""
    _, _, height, width = feat_shape
    ph, pw = output_size
    offset = 0.5 if aligned else 0.0
    rois = rois.float()
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # torchvision's legacy mode: RoIs at least one pixel wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
    else:  # adaptive: about one sample per feature pixel; an empty RoI gets none (output 0)
        grid_h = torch.ceil(roi_h / ph).long().clamp(min=0)
        grid_w = torch.ceil(roi_w / pw).long().clamp(min=0)
    rows, cols, vals = [], [], []
    # RoIs with the same sampling grid are vectorised together
    pairs = torch.stack([grid_h, grid_w], 1)
    groups = [g for g in torch.unique(pairs, dim=0).tolist() if g[0] > 0 and g[1] > 0]
    for gh, gw in groups:
        sel = torch.nonzero((grid_h == gh) & (grid_w == gw)).squeeze(1)
        y_lo, y_hi, wy_lo, wy_hi, y_in = _axis_samples(y1[sel], roi_h[sel], ph, gh, height)
        x_lo, x_hi, wx_lo, wx_hi, x_in = _axis_samples(x1[sel], roi_w[sel], pw, gw, width)
        n = sel.numel()
        base = rois[sel, 0].long() * (height * width)
        scale = (y_in[:, :, None] & x_in[:, None, :]).to(wy_lo.dtype) / (gh * gw)
        # [n, ph*gh, pw*gw, 4 corners] pixel indices and weights
        y_idx, wy = (
            torch.stack([y_lo, y_lo, y_hi, y_hi], -1),
            torch.stack([wy_lo, wy_lo, wy_hi, wy_hi], -1),
        )
        x_idx, wx = (
            torch.stack([x_lo, x_hi, x_lo, x_hi], -1),
            torch.stack([wx_lo, wx_hi, wx_lo, wx_hi], -1),
        )
        col = base[:, None, None, None] + y_idx[:, :, None] * width + x_idx[:, None, :]
        val = wy[:, :, None] * wx[:, None, :] * scale[..., None]
        # reorder to (roi, bin y, bin x, sample y, sample x, corner): entries sorted by bin row
        order = (n, ph, gh, pw, gw, 4)
        cols.append(col.view(order).permute(0, 1, 3, 2, 4, 5).reshape(-1))
        vals.append(val.view(order).permute(0, 1, 3, 2, 4, 5).reshape(-1))
        bins = sel[:, None] * (ph * pw) + torch.arange(ph * pw, device=rois.device)
        rows.append(bins.reshape(-1).repeat_interleave(gh * gw * 4))
    if not rows:
        empty = rois.new_zeros(0, dtype=torch.long)
        return empty, empty, rois.new_zeros(0)
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    if len(groups) > 1:  # each group is sorted by row, the concatenation is not
        order = torch.argsort(rows, stable=True)
        rows, cols, vals = rows[order], cols[order], vals[order]
    return rows, cols, vals


def _csr(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> Tensor:
    """A CSR matrix from entries sorted by row; a repeated (row, col) pair adds up in products."""
    counts = torch.bincount(rows, minlength=shape[0])
    crow = torch.zeros(shape[0] + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is all we use
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, shape, check_invariants=False)


class _SparseRoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feat, rois, output_size, spatial_scale, sampling_ratio, aligned):
        batch, channels, height, width = feat.shape
        rows, cols, vals = _sampling_entries(
            rois, feat.shape, output_size, spatial_scale, sampling_ratio, aligned
        )
        num_bins = rois.size(0) * output_size[0] * output_size[1]
        pixels = feat.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
        with torch.autocast('cpu', enabled=False):  # fp32 in, fp32 out, as torchvision's op
            pooled = _csr(rows, cols, vals, (num_bins, batch * height * width)) @ pixels
        ctx.save_for_backward(rows, cols, vals)
        ctx.feat_shape = feat.shape
        out = pooled.view(rois.size(0), *output_size, channels).permute(0, 3, 1, 2)
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad_out):
        rows, cols, vals = ctx.saved_tensors
        batch, channels, height, width = ctx.feat_shape
        grad_bins = grad_out.permute(0, 2, 3, 1).reshape(-1, channels).float()
        order = torch.argsort(cols, stable=True)  # the transpose's rows are the pixels
        shape = (batch * height * width, grad_bins.size(0))
        transposed = _csr(cols[order], rows[order], vals[order], shape)
        with torch.autocast('cpu', enabled=False):
            grad = (transposed @ grad_bins).view(batch, height, width, channels)
        return grad.permute(0, 3, 1, 2), None, None, None, None, None


def roi_align(
    feat: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = False,
) -> Tensor:
    """``torchvision.ops.roi_align``: feat [B, C, H, W], rois [R, 5] (batch index, x1, y1, x2, y2
    in input pixels) -> [R, C, *output_size].

    fp32 CPU inputs take :func:`sparse_roi_align_cpu`; everything else goes to torchvision.
    """
    if feat.device.type != 'cpu' or feat.dtype != torch.float32 or rois.size(0) == 0:
        return tv_roi_align(feat, rois, output_size, spatial_scale, sampling_ratio, aligned)
    return sparse_roi_align_cpu(feat, rois, output_size, spatial_scale, sampling_ratio, aligned)


def sparse_roi_align_cpu(
    feat: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = False,
) -> Tensor:
    """The fast path of :func:`roi_align`: the same values and gradients as torchvision's kernel,
    as one sparse matrix product. feat [B, C, H, W] fp32 on CPU, rois [R, 5] -> [R, C, ph, pw]
    fp32, also under autocast."""
    if feat.device.type != 'cpu' or feat.dtype != torch.float32:
        raise ValueError(
            f'sparse_roi_align_cpu: needs an fp32 CPU feature map, got {feat.dtype} on '
            f'{feat.device}; call roi_align, which dispatches'
        )
    return _SparseRoIAlign.apply(
        feat, rois, tuple(output_size), spatial_scale, sampling_ratio, aligned
    )
