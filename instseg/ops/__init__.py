"""Kernels with a reference semantics and device-specific fast paths behind them.

Each public function computes what its reference does (``torchvision.ops.roi_align``,
``torch.nn.functional.conv_transpose2d``) and dispatches to a named fast path where one is
faster; tests compare each fast path with its reference, values and gradients. Imports only
torch and torchvision, never ``instseg.models``.
"""

from instseg.ops.conv_transpose import conv_transpose2d, conv_transpose2d_as_matmul
from instseg.ops.roi_align import roi_align, sparse_roi_align_cpu

__all__ = ['conv_transpose2d', 'conv_transpose2d_as_matmul', 'roi_align', 'sparse_roi_align_cpu']
