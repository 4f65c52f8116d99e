"""Mask containers: every operation gives the same pixels for polygons, bitmaps and RLEs."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.structures import InstanceData
from torchvision.ops import roi_align

from instseg.structures.masks import BaseInstanceMasks, BitmapMasks, PolygonMasks, RLEMasks
from instseg.structures.masks.conversions import roi_targets

H, W = 32, 48
# Instance 0: a 10 x 20 rectangle (rows 5..14, columns 8..27); instance 1: an L (72 pixels);
# instance 2: empty.
POLYGONS = [
    [np.array([8, 5, 28, 5, 28, 15, 8, 15], dtype=float)],
    [np.array([2, 18, 12, 18, 12, 22, 6, 22, 6, 30, 2, 30], dtype=float)],
    [],
]


def reference_bitmap() -> np.ndarray:
    masks = np.zeros((3, H, W), dtype=np.uint8)
    masks[0, 5:15, 8:28] = 1
    masks[1, 18:22, 2:12] = 1
    masks[1, 22:30, 2:6] = 1
    return masks


def all_kinds() -> dict[str, BaseInstanceMasks]:
    bitmap = reference_bitmap()
    return {
        'polygon': PolygonMasks(POLYGONS, H, W),
        'bitmap': BitmapMasks(bitmap, H, W),
        'rle': RLEMasks([mask_utils.encode(np.asfortranarray(m)) for m in bitmap], H, W),
    }


def shifted(masks: np.ndarray, out_shape: tuple[int, int], dy: int, dx: int) -> np.ndarray:
    """Content moved by (dy, dx) onto an out_shape canvas, done with numpy indexing."""
    out = np.zeros((len(masks), *out_shape), dtype=np.uint8)
    yy, xx = np.indices(out_shape)
    sy, sx = yy - dy, xx - dx
    ok = (sy >= 0) & (sy < masks.shape[1]) & (sx >= 0) & (sx < masks.shape[2])
    out[:, ok] = masks[:, sy[ok], sx[ok]]
    return out


def rotated_90(masks: np.ndarray) -> np.ndarray:
    """90 degrees counter-clockwise about ((W-1)/2, (H-1)/2) = (23.5, 15.5) on the same canvas:
    x' = y + 8, y' = 39 - x."""
    out = np.zeros_like(masks)
    yy, xx = np.indices((H, W))
    sy, sx = xx - 8, 39 - yy
    ok = (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
    out[:, ok] = masks[:, sy[ok], sx[ok]]
    return out


M = reference_bitmap()
OPS = {
    'resize_up': (lambda m: m.resize((64, 96)), M.repeat(2, 1).repeat(2, 2)),
    'rescale_2': (lambda m: m.rescale(2.0), M.repeat(2, 1).repeat(2, 2)),
    'resize_nonuniform': (lambda m: m.resize((32, 96)), M.repeat(2, 2)),
    'flip_h': (lambda m: m.flip('horizontal'), M[:, :, ::-1]),
    'flip_v': (lambda m: m.flip('vertical'), M[:, ::-1]),
    'flip_d': (lambda m: m.flip('diagonal'), M[:, ::-1, ::-1]),
    'crop': (lambda m: m.crop(np.array([4, 2, 20, 12])), M[:, 2:12, 4:20]),
    'crop_clipped': (lambda m: m.crop(np.array([20, 10, 60, 40])), M[:, 10:32, 20:48]),
    'pad': (lambda m: m.pad((40, 64)), np.pad(M, ((0, 0), (0, 8), (0, 16)))),
    'translate_h': (lambda m: m.translate((H, W), 5, 'horizontal'), shifted(M, (H, W), 0, 5)),
    'translate_v': (lambda m: m.translate((40, 40), -3, 'vertical'), shifted(M, (40, 40), -3, 0)),
    'rotate_90': (lambda m: m.rotate((H, W), 90), rotated_90(M)),
}


@pytest.mark.parametrize('op', sorted(OPS))
@pytest.mark.parametrize('kind', ['polygon', 'bitmap', 'rle'])
def test_geometric_op_gives_expected_pixels(kind: str, op: str) -> None:
    masks = all_kinds()[kind]
    fn, expected = OPS[op]
    out = fn(masks)
    assert type(out) is type(masks) and len(out) == 3
    assert (out.height, out.width) == expected.shape[1:]
    np.testing.assert_array_equal(out.to_ndarray(), expected)
    # Axis-aligned integer shapes: areas and boxes are exact for every kind, polygons included.
    np.testing.assert_array_equal(out.areas, expected.sum(axis=(1, 2)))
    np.testing.assert_array_equal(
        out.get_bboxes(), BitmapMasks(expected, *expected.shape[1:]).get_bboxes()
    )
    np.testing.assert_array_equal(masks.to_ndarray(), M)  # the input is left untouched


@pytest.mark.parametrize('kind', ['polygon', 'bitmap', 'rle'])
def test_areas_boxes_and_conversions(kind: str) -> None:
    masks = all_kinds()[kind]
    np.testing.assert_array_equal(masks.areas, [200, 72, 0])
    assert masks.areas.dtype == np.float32 and masks.get_bboxes().dtype == np.float32
    np.testing.assert_array_equal(masks.get_bboxes(), [[8, 5, 28, 15], [2, 18, 12, 30], [0] * 4])
    tensor = masks.to_tensor(torch.bool, 'cpu')
    assert tensor.dtype == torch.bool and tensor.shape == (3, H, W)
    assert torch.equal(tensor, torch.from_numpy(M).bool())
    rles = masks.to_rle()
    assert all(isinstance(r['counts'], bytes) and r['size'] == [H, W] for r in rles)
    np.testing.assert_array_equal(mask_utils.decode(rles).transpose(2, 0, 1), M)
    assert repr(masks) == f'{type(masks).__name__}(num_masks=3, height=32, width=48)'


def random_polygons(
    rng: np.random.Generator, n: int, h: int, w: int, radius: tuple[float, float] = (10, 16)
) -> PolygonMasks:
    """n star-shaped blobs (9 vertices at random angles and radii), a second one on some."""
    instances = []
    for _ in range(n):
        polys = []
        for _ in range(1 + int(rng.random() < 0.3)):
            cx, cy = rng.uniform(12, w - 12), rng.uniform(12, h - 12)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
            radii = rng.uniform(*radius, 9)
            polys.append(
                np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).reshape(-1)
            )
        instances.append(polys)
    return PolygonMasks(instances, h, w)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def test_composed_ops_agree_across_kinds() -> None:
    polys = random_polygons(np.random.default_rng(1), 6, 96, 128, radius=(20, 28))
    bitmap = BitmapMasks(polys.to_ndarray(), 96, 128)
    rle = RLEMasks.from_polygons(polys)
    np.testing.assert_array_equal(rle.to_ndarray(), bitmap.to_ndarray())

    def chain(m: BaseInstanceMasks) -> BaseInstanceMasks:
        m = m.resize((125, 167)).flip('horizontal').crop(np.array([10, 5, 160, 120]))
        return m.pad((128, 160))

    p, b, r = chain(polys), chain(bitmap), chain(rle)
    assert (p.height, p.width) == (b.height, b.width) == (r.height, r.width) == (128, 160)
    assert b.to_ndarray().sum(axis=(1, 2)).min() > 0
    assert iou(p.to_ndarray(), b.to_ndarray()).min() >= 0.95
    single = [i for i, polys in enumerate(p.masks) if len(polys) == 1]  # shoelace sums overlaps
    np.testing.assert_allclose(p.areas[single], b.areas[single], rtol=0.05)
    np.testing.assert_array_equal(r.to_ndarray(), b.to_ndarray())
    # A second resampling: bitmaps resample their resampled pixels, RLEs resample the source
    # once through the composed map, so they stay closer to the polygons' own rasterisation.
    p, r, b = (m.resize((77, 101)).flip('vertical').translate((80, 90), 4) for m in (p, r, b))
    truth = p.to_ndarray()
    assert iou(r.to_ndarray(), truth).mean() > iou(b.to_ndarray(), truth).mean()
    np.testing.assert_array_equal(r.areas, r.to_ndarray().sum(axis=(1, 2)))
    np.testing.assert_array_equal(r.get_bboxes(), BitmapMasks(r.to_ndarray(), 80, 90).get_bboxes())
    # to_rle of a transformed RLEMasks re-encodes at the new canvas.
    again = RLEMasks(r.to_rle(), 80, 90)
    np.testing.assert_array_equal(again.to_ndarray(), r.to_ndarray())


def test_rle_chain_resamples_the_source_once() -> None:
    rle = RLEMasks.from_polygons(random_polygons(np.random.default_rng(7), 5, 60, 80))
    once = rle.resize((90, 110))
    # Any detour through other scales lands on exactly the pixels of one direct resize.
    for detour in [(31, 47), (130, 170), (61, 79)]:
        np.testing.assert_array_equal(rle.resize(detour).resize((90, 110)).to_ndarray(),
                                      once.to_ndarray())  # fmt: skip
    # Flips and integer shifts commute with the single resampling.
    np.testing.assert_array_equal(
        rle.flip('horizontal').resize((90, 110)).flip('horizontal').to_ndarray(), once.to_ndarray()
    )
    # Content cropped away stays away when a later pad or resize brings the area back.
    cropped = rle.crop(np.array([20, 10, 60, 50])).resize((80, 80)).pad((100, 120))
    expected = np.zeros((5, 100, 120), np.uint8)
    expected[:, :80, :80] = rle.to_ndarray()[:, 10:50, 20:60].repeat(2, 1).repeat(2, 2)
    np.testing.assert_array_equal(cropped.to_ndarray(), expected)
    shifted_out = rle.translate((60, 80), 30).translate((60, 80), -30)
    kept = rle.to_ndarray().copy()
    kept[:, :, 50:] = 0
    np.testing.assert_array_equal(shifted_out.to_ndarray(), kept)


def test_rle_boxes_and_areas_match_decoded_pixels_through_random_chains() -> None:
    """Boxes and areas come from the runs without decoding; they must equal what the decoded
    pixels say, for sparse speckle (thin tips, runs that wrap into the next column), full and
    empty masks, after any chain of lazy operations."""
    rng = np.random.default_rng(11)
    ops = [
        lambda m: m.resize((int(rng.integers(5, 90)), int(rng.integers(5, 90)))),
        lambda m: m.flip(['horizontal', 'vertical', 'diagonal'][rng.integers(3)]),
        lambda m: m.crop(np.array([*rng.integers(0, 20, 2), *rng.integers(20, 60, 2)])),
        lambda m: m.pad((m.height + int(rng.integers(0, 9)), m.width + int(rng.integers(0, 9)))),
        lambda m: m.translate((m.height, m.width), float(rng.integers(-9, 9))),
    ]
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(3, 50, 2))
        dense = (rng.random((6, h, w)) < rng.random((6, 1, 1)) ** 3).astype(np.uint8)
        dense[0] = 0
        dense[1] = 1
        masks = RLEMasks([mask_utils.encode(np.asfortranarray(m)) for m in dense], h, w)
        for _ in range(int(rng.integers(0, 5))):
            masks = ops[rng.integers(len(ops))](masks)
        pixels = masks.to_ndarray()
        np.testing.assert_array_equal(masks.areas, pixels.sum(axis=(1, 2)))
        reference = BitmapMasks(pixels, masks.height, masks.width).get_bboxes()
        np.testing.assert_array_equal(masks.get_bboxes(), reference)


def test_rle_corrupt_counts_name_the_instance() -> None:
    good = mask_utils.encode(np.asfortranarray(M[0]))
    masks = RLEMasks([good, {'size': [H, W], 'counts': good['counts'][:-1]}], H, W)
    with pytest.raises(ValueError, match='instance 1'):
        masks.get_bboxes()


def test_rotate_arbitrary_angle_agrees() -> None:
    polys = random_polygons(np.random.default_rng(2), 5, 64, 64)
    bitmap = BitmapMasks(polys.to_ndarray(), 64, 64)
    rle = RLEMasks.from_polygons(polys).flip('vertical').flip('vertical')
    args = ((70, 60), 30.0, (30.0, 34.0), 0.9)
    p, b, r = polys.rotate(*args), bitmap.rotate(*args), rle.rotate(*args)
    np.testing.assert_array_equal(r.to_ndarray(), b.to_ndarray())
    assert iou(p.to_ndarray(), b.to_ndarray()).min() >= 0.9


def test_crop_and_resize_pinned() -> None:
    box = torch.tensor([[0.0, 0.0, 40.0, 20.0], [8.0, 5.0, 48.0, 15.0]])
    # Box 0 (10 x 5 px bins) over the rectangle (columns 8..27, rows 5..14): covered fractions
    # per column bin 0.2, 1, 0.8, 0; per row bin 0, 1, 1, 0. Box 1: the rectangle is its left half.
    expected = torch.tensor(
        [
            [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]],
            [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]],
        ],
        dtype=torch.float32,
    )
    for name, masks in all_kinds().items():
        out = masks.crop_and_resize(box, (4, 4), torch.tensor([0, 0]), device='cpu')
        assert out.dtype == torch.float32 and out.device.type == 'cpu', name
        assert torch.equal(out, expected), name
        # The empty instance and the L give their own targets.
        out = masks.crop_and_resize(
            torch.tensor([[2.0, 18.0, 12.0, 30.0]] * 2), (3, 2), torch.tensor([1, 2])
        )
        assert torch.equal(out[0], torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])), name
        assert out[1].sum() == 0, name
        empty = masks.crop_and_resize(torch.zeros(0, 4), (28, 28), torch.zeros(0, dtype=torch.long))
        assert empty.shape == (0, 28, 28) and empty.dtype == torch.float32


def random_boxes(rng: np.random.Generator, k: int, h: int, w: int) -> torch.Tensor:
    xy = rng.uniform(-6, [w, h], (k, 2))
    wh = rng.uniform(4, 40, (k, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)


def test_crop_and_resize_agrees_across_kinds() -> None:
    rng = np.random.default_rng(3)
    polys = random_polygons(rng, 8, 72, 96)
    bitmap = BitmapMasks(polys.to_ndarray(), 72, 96)
    rle = RLEMasks.from_polygons(polys)
    # Objects are 20-32 px wide: boxes around them, jittered, as the mask head sees them.
    gt = torch.from_numpy(bitmap.get_bboxes())
    inds = torch.from_numpy(rng.integers(0, 8, 64))
    boxes = gt[inds] + torch.from_numpy(rng.uniform(-4, 4, (64, 4))).float()
    t_poly = polys.crop_and_resize(boxes, (28, 28), inds)
    t_bit = bitmap.crop_and_resize(boxes, (28, 28), inds)
    t_rle = rle.crop_and_resize(boxes, (28, 28), inds)
    assert t_bit.shape == (64, 28, 28) and set(t_bit.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(t_rle, t_bit)
    assert (t_poly == t_bit).float().mean() >= 0.98
    # Transformed containers: RLE stays lazy yet matches the transformed bitmap exactly.
    b2, r2 = bitmap.resize((50, 70)).flip('diagonal'), rle.resize((50, 70)).flip('diagonal')
    more = random_boxes(rng, 32, 50, 70)
    more_inds = torch.from_numpy(rng.integers(0, 8, 32))
    assert torch.equal(
        r2.crop_and_resize(more, (14, 14), more_inds), b2.crop_and_resize(more, (14, 14), more_inds)
    )


def test_bitmap_targets_equal_roi_align_on_full_canvas() -> None:
    rng = np.random.default_rng(4)
    bitmap = BitmapMasks(random_polygons(rng, 5, 64, 64).to_ndarray(), 64, 64)
    boxes = random_boxes(rng, 40, 64, 64)
    boxes[:4] = torch.tensor(
        [
            [-10.0, -10.0, 70.0, 70.0],
            [60.0, 60.0, 66.5, 65.0],
            [-3.0, 2.0, -0.5, 9.0],
            [63.5, 10.0, 80.0, 20.0],
        ]
    )
    inds = torch.from_numpy(rng.integers(0, 5, 40))
    full = torch.from_numpy(bitmap.masks).float()[inds][:, None]
    rois = torch.cat([torch.arange(40, dtype=torch.float32)[:, None], boxes], 1)
    reference = (roi_align(full, rois, (28, 28), 1.0, 0, True)[:, 0] >= 0.5).float()
    # Windows around each box (padded into shared batches) reproduce it bit for bit, also when
    # a small budget splits the RoIs over many RoIAlign calls.
    assert torch.equal(bitmap.crop_and_resize(boxes, (28, 28), inds), reference)

    def cut(i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return bitmap.masks[i, y0:y1, x0:x1]

    split = roi_targets(cut, boxes.double().numpy(), inds.numpy(), (28, 28), 64, 64, 'cpu', 3000)
    assert torch.equal(split, reference)


def test_indexing_and_cat_through_instance_data() -> None:
    for name, masks in all_kinds().items():
        inst = InstanceData(masks=masks, labels=torch.arange(3))
        picked = inst[torch.tensor([True, False, True])]
        assert type(picked.masks) is type(masks) and len(picked.masks) == 2, name
        np.testing.assert_array_equal(picked.masks.to_ndarray(), M[[0, 2]])
        np.testing.assert_array_equal(inst[torch.tensor([1, 0])].masks.to_ndarray(), M[[1, 0]])
        np.testing.assert_array_equal(inst[1:].masks.to_ndarray(), M[1:])
        none = inst[torch.zeros(3, dtype=torch.bool)]
        assert len(none.masks) == 0 and (none.masks.height, none.masks.width) == (H, W)
        assert none.masks.to_ndarray().shape == (0, H, W)
        both = InstanceData.cat([inst, picked])
        np.testing.assert_array_equal(both.masks.to_ndarray(), M[[0, 1, 2, 0, 2]])
        # Direct indexing with the other supported index types.
        cases = [
            (1, [1]),
            (-1, [2]),
            ([2, 0], [2, 0]),
            (np.array([0, 2]), [0, 2]),
            (np.array([False, True, True]), [1, 2]),
            (slice(None, None, 2), [0, 2]),
            (torch.tensor([2, 1]), [2, 1]),
            (torch.tensor([True, True, False]), [0, 1]),
        ]
        for index, rows in cases:
            np.testing.assert_array_equal(masks[index].to_ndarray(), M[rows])
        with pytest.raises(IndexError, match='out of range'):
            masks[3]
        with pytest.raises(IndexError, match='length 2'):
            masks[np.array([True, False])]
        empty = type(masks).empty(H, W)
        assert len(empty) == 0 and empty.areas.shape == (0,) and empty.get_bboxes().shape == (0, 4)


def test_cat_rejects_mixed_inputs_and_merges_rle_transforms() -> None:
    kinds = all_kinds()
    with pytest.raises(ValueError, match='different canvases'):
        BitmapMasks.cat([kinds['bitmap'], kinds['bitmap'].pad((40, 48))])
    with pytest.raises(TypeError, match='item 1'):
        PolygonMasks.cat([kinds['polygon'], kinds['bitmap']])
    with pytest.raises(ValueError, match='non-empty list'):
        RLEMasks.cat([])
    # Same canvas reached by different transforms: cat still gives the right pixels.
    rle = kinds['rle']
    a = rle.flip('horizontal')
    b = RLEMasks(rle.to_rle(), H, W).resize((64, 96)).resize((H, W))
    np.testing.assert_array_equal(
        RLEMasks.cat([a, b]).to_ndarray(), np.concatenate([M[:, :, ::-1], M])
    )


def test_constructor_errors_and_input_normalisation() -> None:
    with pytest.raises(ValueError, match='instance 1'):
        PolygonMasks([[np.zeros(6)], [np.array([0.0, 0.0, 5.0, 5.0])]], H, W)
    with pytest.raises(ValueError, match='instance 0 must be a list of polygons'):
        PolygonMasks([[0.0, 0.0, 5.0, 0.0, 5.0, 5.0]], H, W)
    with pytest.raises(ValueError, match=r'\[32, 40\].*\[32, 48\]'):
        RLEMasks([{'size': [32, 40], 'counts': b'0'}], H, W)
    with pytest.raises(ValueError, match='summing to 10'):
        RLEMasks([{'size': [H, W], 'counts': [4, 6]}], H, W)
    with pytest.raises(ValueError, match='height=32, width=40'):
        BitmapMasks(M, H, 40)
    # str and uncompressed counts become pycocotools' compressed bytes.
    compressed = mask_utils.encode(np.asfortranarray(M[0]))
    as_str = {'size': [H, W], 'counts': compressed['counts'].decode()}
    column = M[0].T.reshape(-1)  # column-major runs: 8 * 32 + 5 zeros, then 10 ones, ...
    edges = np.flatnonzero(np.diff(np.concatenate([[0], column, [0]])))
    runs = np.diff(np.concatenate([[0], edges, [H * W]])).tolist()
    masks = RLEMasks([as_str, {'size': [H, W], 'counts': runs}], H, W)
    assert [r['counts'] for r in masks.to_rle()] == [compressed['counts']] * 2
    # 0/255 and bool bitmaps are stored as 0/1.
    np.testing.assert_array_equal(BitmapMasks(M * 255, H, W).areas, [200, 72, 0])
    assert BitmapMasks(M.astype(bool), H, W).masks.dtype == np.uint8
    for masks in all_kinds().values():
        with pytest.raises(ValueError, match='diagonal'):
            masks.flip('sideways')
        with pytest.raises(ValueError, match='smaller'):
            masks.pad((16, 16))
        with pytest.raises(IndexError, match=r'\[0, 3\)'):
            masks.crop_and_resize(torch.zeros(1, 4), (4, 4), torch.tensor([5]))


def test_rescale_rounds_like_mmcv() -> None:
    for masks in all_kinds().values():
        out = masks.rescale(0.7)  # 32 * 0.7 = 22.4 -> 22, 48 * 0.7 = 33.6 -> 34
        assert (out.height, out.width) == (22, 34)


def test_crop_outside_keeps_instances_empty() -> None:
    for name, masks in all_kinds().items():
        out = masks.crop(np.array([40, 0, 48, 4]))  # no foreground in this corner
        assert len(out) == 3 and (out.height, out.width) == (4, 8), name
        assert out.to_ndarray().sum() == 0 and out.areas.sum() == 0
        np.testing.assert_array_equal(out.get_bboxes(), np.zeros((3, 4)))


def test_rle_large_canvas_stays_compact() -> None:
    """1,000 nuclei on a 1000 x 1000 image: lazy geometry and 128 RoI targets never allocate
    N full-size masks (that alone would be 1 GB)."""
    rng = np.random.default_rng(5)
    n, size = 1000, 1000
    centres = rng.uniform(20, size - 20, (n, 2))
    radii = rng.uniform(5, 12, n)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    polys = [
        [np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1)]
        for (cx, cy), r in zip(centres, radii, strict=True)
    ]
    polygons = PolygonMasks(polys, size, size)
    rle = RLEMasks.from_polygons(polygons)
    np.testing.assert_allclose(rle.areas, polygons.areas, rtol=0.15)
    np.testing.assert_allclose(rle.get_bboxes(), polygons.get_bboxes(), atol=1.0)
    inds = torch.from_numpy(rng.choice(n, 128, replace=False))
    tracemalloc.start()
    try:
        out = rle.resize((1200, 1300)).flip('horizontal').crop(np.array([100, 50, 1100, 1150]))
        out = out.pad((1120, 1024))
        boxes = torch.from_numpy(out[inds.numpy()].get_bboxes())
        targets = out.crop_and_resize(boxes, (28, 28), inds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f'peak {peak / 2**20:.1f} MB'
    assert targets.shape == (128, 28, 28)
    visible = (boxes[:, 2] > boxes[:, 0]).numpy()
    # Every visible nucleus fills most of its own tight box (a circle covers ~78% of it).
    fill = targets.mean(dim=(1, 2)).numpy()
    assert visible.sum() > 80 and (fill[visible] > 0.6).all()
