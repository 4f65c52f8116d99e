"""Swin Transformer building blocks, named as mmdetection 3.x names them.

Feature maps travel between blocks as channels-last Tensor[B, H, W, C]; every module pads what it
needs (patch size, window size, even sizes for merging) so any input size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, gen_relative_position_index
from timm.models.swin_transformer import window_partition, window_reverse
from torch import Tensor, nn

# The additive attention bias that separates tokens from different image regions inside one shifted
# window; the official release and mmdetection use -100 rather than -inf.
_MASKED = -100.0


def shift_window_mask(
    height: int, width: int, window_size: int, shift_size: int, device: torch.device
) -> Tensor:
    """Attention bias for shifted windows on a padded map of ``height`` x ``width`` tokens.

    After the cyclic shift some windows hold tokens from up to four image regions that were not
    neighbours; those pairs get ``-100``. Returns Tensor[num_windows, w*w, w*w] with values in
    {0, -100}, windows in row-major order.
    """
    region = torch.zeros(1, height, width, 1, device=device)
    bounds = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    for i, rows in enumerate(bounds):
        for j, cols in enumerate(bounds):
            region[:, rows, cols, :] = i * 3 + j
    windows = window_partition(region, (window_size, window_size)).flatten(1)
    different = windows.unsqueeze(1) != windows.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, _MASKED)


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        embed_dims: channels C.
        num_heads: attention heads; C must divide by it.
        window_size: window side w.
        qkv_bias: learn a bias for q, k, v. Defaults to True.
        qk_scale: attention logit scale. Defaults to None (head_dims ** -0.5).
        attn_drop_rate: dropout on attention weights. Defaults to 0.
        proj_drop_rate: dropout after the output projection. Defaults to 0.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} does not split into {num_heads} heads')
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = qk_scale or (embed_dims // num_heads) ** -0.5
        self.attn_drop_rate = attn_drop_rate
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        # Persistent, as in mmdetection, so its checkpoints hold exactly this module's keys.
        self.register_buffer(
            'relative_position_index', gen_relative_position_index((window_size, window_size))
        )
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Tensor[B * num_windows, w*w, C] (windows of one image consecutive), optional mask
        Tensor[num_windows, w*w, w*w] -> Tensor[B * num_windows, w*w, C]."""
        batch_windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch_windows, tokens, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B*nW, heads, N, d]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, -1).permute(2, 0, 1)  # [heads, N, N]
        if mask is not None:
            num_windows = mask.shape[0]
            # Split the batch from the windows so the per-window mask broadcasts over images.
            q, k, v = (t.unflatten(0, (-1, num_windows)) for t in (q, k, v))
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # [nW, heads, N, N]
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop_rate if self.training else 0.0,
            scale=self.scale,
        )
        out = out.reshape(batch_windows, self.num_heads, tokens, -1).transpose(1, 2)
        return self.proj_drop(self.proj(out.reshape(batch_windows, tokens, channels)))


class ShiftWindowMSA(nn.Module):
    """(Shifted) window attention over a whole map: pad, shift, split into windows, attend, undo.

    Args:
        embed_dims, num_heads, window_size, qkv_bias, qk_scale, attn_drop_rate, proj_drop_rate:
            see :class:`WindowMSA`.
        shift_size: cyclic shift towards the top left before splitting; 0 for plain windows.
        drop_path_rate: stochastic depth on the output. Defaults to 0.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f'shift_size {shift_size} must be in [0, window_size={window_size})')
        self.window_size = window_size
        self.shift_size = shift_size
        self.w_msa = WindowMSA(
            embed_dims, num_heads, window_size, qkv_bias, qk_scale, attn_drop_rate, proj_drop_rate
        )
        self.drop = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Tensor[B, H, W, C] -> Tensor[B, H, W, C]. ``mask`` (shifted blocks only) comes from
        :func:`shift_window_mask` for H and W padded up to multiples of the window size."""
        _, height, width, channels = x.shape
        w = self.window_size
        # Pad before shifting (as the official detection code): padding stays at the bottom/right.
        x = F.pad(x, (0, 0, 0, -width % w, 0, -height % w))
        padded_h, padded_w = x.shape[1:3]
        if self.shift_size:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = window_partition(x, (w, w)).view(-1, w * w, channels)
        windows = self.w_msa(windows, mask=mask if self.shift_size else None)
        x = window_reverse(windows.view(-1, w, w, channels), (w, w), padded_h, padded_w)
        if self.shift_size:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        return self.drop(x[:, :height, :width, :])


class FFN(nn.Module):
    """Two-layer MLP with a residual: ``identity + drop_path(fc2(drop(gelu(fc1(x)))))``.

    ``layers.0.0`` and ``layers.1`` are the two Linear layers (mmcv's FFN layout).
    """

    def __init__(
        self,
        embed_dims: int,
        feedforward_channels: int,
        ffn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(
                nn.Linear(embed_dims, feedforward_channels), nn.GELU(), nn.Dropout(ffn_drop)
            ),
            nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(ffn_drop),
        )
        self.dropout_layer = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, identity: Tensor) -> Tensor:
        """Tensor[..., C] and the residual Tensor[..., C] -> Tensor[..., C]."""
        return identity + self.dropout_layer(self.layers(x))


class SwinBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + ffn(norm2(x))`` on Tensor[B, H, W, C].

    Args:
        embed_dims: channels C.
        num_heads: attention heads.
        feedforward_channels: hidden width of the FFN.
        window_size: window side.
        shift: shift windows by ``window_size // 2`` (every second block of a stage).
        qkv_bias, qk_scale: see :class:`WindowMSA`.
        drop_rate: dropout after the attention projection and inside the FFN.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth of both residual branches.
        norm_eps: LayerNorm epsilon. Defaults to 1e-5.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        feedforward_channels: int,
        window_size: int = 7,
        shift: bool = False,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ShiftWindowMSA(
            embed_dims,
            num_heads,
            window_size,
            shift_size=window_size // 2 if shift else 0,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, feedforward_channels, drop_rate, drop_path_rate)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Tensor[B, H, W, C] -> Tensor[B, H, W, C]; ``mask`` as for :class:`ShiftWindowMSA`."""
        x = x + self.attn(self.norm1(x), mask)
        return self.ffn(self.norm2(x), identity=x)


class PatchEmbed(nn.Module):
    """Non-overlapping patches: Tensor[B, C_in, H, W] -> Tensor[B, ceil(H/p), ceil(W/p), C].

    The image is zero-padded at the bottom/right to a multiple of the patch size ``p``.
    """

    def __init__(
        self, in_channels: int, embed_dims: int, patch_size: int, norm: bool, norm_eps: float
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        x = self.projection(x).permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x


class PatchMerging(nn.Module):
    """2x2 neighbours to one token: Tensor[B, H, W, C] -> Tensor[B, ceil(H/2), ceil(W/2), C_out].

    The four neighbours are concatenated channel-major (``c * 4 + dy * 2 + dx``), the order of
    mmdetection's ``nn.Unfold``, so its checkpoints load unchanged; the official release orders them
    neighbour-major, which :func:`~instseg.checkpoint.convert.backbones.convert_swin_official`
    permutes.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: bool, norm_eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels, eps=norm_eps) if norm else None
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, channels = x.shape
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = x.reshape(batch, (height + 1) // 2, 2, (width + 1) // 2, 2, channels)
        x = x.permute(0, 1, 3, 5, 2, 4).flatten(3)  # [B, H/2, W/2, C * (dy, dx)]
        if self.norm is not None:
            x = self.norm(x)
        return self.reduction(x)
