"""ChunkedOverlaps: the maxima and low-quality claims of an IoU matrix read in chunks equal those
of the whole matrix, with no chunk larger than asked."""

from __future__ import annotations

import pytest
import torch

from instseg.models.task_modules import bbox_overlaps
from instseg.models.task_modules.assigners.chunked_overlaps import ChunkedOverlaps


def _boxes(num: int, seed: int) -> torch.Tensor:
    # integer corners on a coarse grid: many exact ties, some far apart, a few of zero area
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 20, (num, 2), generator=g).float() * 4
    wh = torch.randint(0, 5, (num, 2), generator=g).float() * 4
    return torch.cat([xy, xy + wh], dim=1)


class _CountingIoU:
    """bbox_overlaps that records the shape of every block it computes."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []

    def __call__(self, gts: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
        self.blocks.append((gts.shape[0], priors.shape[0]))
        return bbox_overlaps(gts, priors)


def _claims_by_loop(overlaps: torch.Tensor, min_iou: float) -> torch.Tensor:
    gt_max = overlaps.max(dim=1).values
    claimant = torch.zeros(overlaps.shape[1], dtype=torch.long)
    for i in range(overlaps.shape[0]):
        if gt_max[i] >= min_iou:
            claimant[overlaps[i] == gt_max[i]] = i + 1
    return claimant


@pytest.mark.parametrize('chunk_elements', [1, 300, 2000, 1 << 20])
@pytest.mark.parametrize('skip_far_gts', [False, True])
def test_chunks_give_the_whole_matrix_maxima_and_claims(chunk_elements, skip_far_gts) -> None:
    gts, priors = _boxes(40, 0), _boxes(500, 1)
    ignored = torch.zeros(500, dtype=torch.bool)
    ignored[::7] = True
    whole = bbox_overlaps(gts, priors).masked_fill(ignored, -1.0)
    iou = _CountingIoU()
    chunked = ChunkedOverlaps(iou, gts, priors, chunk_elements, skip_far_gts, ignored)
    best = chunked.maxima()
    prior_max, prior_argmax = whole.max(dim=0)
    gt_max, gt_argmax = whole.max(dim=1)
    reached = prior_max > 0
    if skip_far_gts:  # left-out gts count as IoU 0, ignored priors too
        torch.testing.assert_close(best.prior_max, prior_max.clamp(min=0), rtol=0, atol=0)
    else:
        torch.testing.assert_close(best.prior_max, prior_max, rtol=0, atol=0)
    assert torch.equal(best.prior_argmax[reached], prior_argmax[reached])
    assert torch.equal(best.gt_max, gt_max)
    assert torch.equal(best.gt_argmax[gt_max > 0], gt_argmax[gt_max > 0])  # first of any ties
    passes = len(iou.blocks)
    for min_iou in (0.1, 0.5):
        assert torch.equal(chunked.last_gt_at_its_max(min_iou), _claims_by_loop(whole, min_iou))
    step = max(1, chunk_elements // 40)
    assert all(n <= step for _, n in iou.blocks)  # never more priors than one chunk holds
    if chunk_elements >= 40 * 500:
        assert len(iou.blocks) == passes == 1  # one chunk is computed once and kept
    if skip_far_gts and chunk_elements == 300:
        assert sum(m for m, _ in iou.blocks[:passes]) < 40 * passes  # far gts were skipped
    assert chunked.maxima() is best


def test_a_given_matrix_is_one_chunk() -> None:
    overlaps = torch.tensor([[0.2, 0.7, 0.7], [0.7, 0.1, 0.0]])
    chunked = ChunkedOverlaps.of_matrix(overlaps)
    best = chunked.maxima()
    assert best.prior_max.tolist() == pytest.approx([0.7, 0.7, 0.7])
    assert best.prior_argmax.tolist() == [1, 0, 0]
    assert best.gt_argmax.tolist() == [1, 0]  # the first of gt 0's two best priors
    assert chunked.last_gt_at_its_max(0.5).tolist() == [2, 1, 1]
    assert chunked.last_gt_at_its_max(0.8).tolist() == [0, 0, 0]


def test_no_gt_reaching_a_chunk_leaves_it_at_zero() -> None:
    gts = torch.tensor([[0.0, 0, 10, 10]])
    priors = torch.tensor([[0.0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 210, 210]])
    iou = _CountingIoU()
    chunked = ChunkedOverlaps(iou, gts, priors, chunk_elements=1, skip_far_gts=True)
    best = chunked.maxima()
    assert best.prior_max.tolist() == [1.0, 0.0, 0.0] and best.gt_max.tolist() == [1.0]
    assert iou.blocks == [(1, 1)]  # the two far chunks computed nothing
    assert chunked.last_gt_at_its_max(0.5).tolist() == [1, 0, 0]
