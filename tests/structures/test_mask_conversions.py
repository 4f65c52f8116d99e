"""Conversions between mask containers, and the exact lazy geometry behind RLEMasks."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from instseg.structures.masks import BitmapMasks, PolygonMasks, RLEMasks
from instseg.structures.masks.geometry import AxisMap

H, W = 30, 40


def shapes() -> np.ndarray:
    """0: a ring (a hole in the middle); 1: two separate blobs, one touching another only at a
    corner pixel; 2: a single pixel; 3: empty."""
    m = np.zeros((4, H, W), np.uint8)
    cv2.circle(m[0], (12, 12), 9, 1, -1)
    cv2.circle(m[0], (12, 12), 4, 0, -1)
    m[1, 2:6, 26:34] = 1
    m[1, 20:27, 30:38] = 1
    m[1, 27, 38] = 1  # diagonal neighbour of (26, 37)
    m[2, 28, 2] = 1
    return m


def filled(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    contours, _ = cv2.findContours(m[0], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out[0], contours, -1, 1, -1)
    return out


@pytest.mark.parametrize('kind', ['bitmap', 'rle', 'rle_moved'])
def test_conversions_are_pixel_exact(kind: str) -> None:
    m = shapes()
    masks = {
        'bitmap': BitmapMasks(m, H, W),
        'rle': RLEMasks(BitmapMasks(m, H, W).to_rle(), H, W),
        # A lazily flipped and padded RLE converts its current pixels.
        'rle_moved': RLEMasks(BitmapMasks(m[:, :, ::-1].copy(), H, W).to_rle(), H, W)
        .flip('horizontal')
        .pad((H, W)),
    }[kind]
    bitmap = masks.to_bitmap()
    assert isinstance(bitmap, BitmapMasks)
    np.testing.assert_array_equal(bitmap.masks, m)
    rle = masks.to_rle_masks()
    assert isinstance(rle, RLEMasks)
    np.testing.assert_array_equal(rle.to_ndarray(), m)
    polys = masks.to_polygons()
    assert isinstance(polys, PolygonMasks) and (polys.height, polys.width) == (H, W)
    assert [len(p) for p in polys.masks] == [1, 2, 1, 0]  # one outline per 8-connected region
    # Rasterised back: the same pixels, except the ring's hole (COCO polygons are a union).
    np.testing.assert_array_equal(polys.to_ndarray(), filled(m))
    np.testing.assert_array_equal(polys.to_rle_masks().to_ndarray(), filled(m))
    # Outlines run a quarter pixel inside the pixels' edges: the single pixel (row 28, col 2).
    np.testing.assert_allclose(
        np.sort(polys.masks[2][0].reshape(-1, 2), axis=0), [[2.25, 28.25]] * 2 + [[2.75, 28.75]] * 2
    )


def test_polygon_conversions_keep_polygons() -> None:
    polys = PolygonMasks([[np.array([1.5, 1.5, 9.5, 1.5, 9.5, 7.5, 1.5, 7.5])], []], 12, 12)
    same = polys.to_polygons()
    assert same is not polys and same.masks[0][0] is polys.masks[0][0]
    rle = polys.to_rle_masks()
    assert isinstance(rle, RLEMasks)
    expected = np.zeros((2, 12, 12), np.uint8)
    expected[0, 2:8, 2:10] = 1  # pixel centres inside the polygon
    np.testing.assert_array_equal(rle.to_ndarray(), expected)
    np.testing.assert_array_equal(polys.to_bitmap().masks, expected)


def test_axis_map_composes_exactly() -> None:
    axis = AxisMap.identity(10)
    assert axis.is_identity and axis.indices() is None
    # Two resizes and their inverse land back on the identity.
    there = axis.resize(7).resize(23).resize(10)
    assert there.is_identity and there.scale == 1
    # Flip twice, crop then pad back: still the identity map, but the cropped columns stay empty.
    assert axis.flip().flip().is_identity
    cropped = axis.shift(-3, 4).shift(3, 10)
    np.testing.assert_array_equal(cropped.indices(), [-1, -1, -1, 3, 4, 5, 6, -1, -1, -1])
    # Shifted right by 0.6 px, pixel j's centre comes from j - 0.1 (source pixel j - 1); by
    # 0.5 px it lands on the boundary, which belongs to the pixel on its right.
    np.testing.assert_array_equal(axis.shift(0.6, 10).indices(), np.arange(-1, 9))
    np.testing.assert_array_equal(axis.shift(0.5, 10).indices(), np.arange(10))
    # Coprime sizes and a float shift: exact rationals, beyond int64, still floor exactly.
    odd = axis.resize(9973).shift(0.1, 9973).resize(7919).shift(-1 / 3, 7919).resize(10)
    assert isinstance(odd.scale, Fraction) and odd.scale == 1
    np.testing.assert_array_equal(odd.indices(), np.arange(10))


def test_rle_flip_is_an_exact_mirror_after_resizes() -> None:
    rng = np.random.default_rng(0)
    m = (rng.random((3, 17, 23)) < 0.4).astype(np.uint8)
    rle = RLEMasks(BitmapMasks(m, 17, 23).to_rle(), 17, 23).resize((29, 31)).resize((40, 35))
    for direction, axes in [('horizontal', (2,)), ('vertical', (1,)), ('diagonal', (1, 2))]:
        np.testing.assert_array_equal(
            rle.flip(direction).to_ndarray(), np.flip(rle.to_ndarray(), axes)
        )


def test_mask_modules_import_downward() -> None:
    """base.py reaches the containers through MASK_TYPES, never by importing them; geometry,
    conversions and rle_runs import no container module at all."""
    import ast
    from pathlib import Path

    import instseg.structures.masks as package
    from instseg.structures.masks.base import MASK_TYPES

    containers = {'bitmap', 'polygon', 'rle'}
    for name in ('base', 'geometry', 'conversions', 'rle_runs'):
        tree = ast.parse((Path(package.__file__).parent / f'{name}.py').read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
        assert not imported & containers, (name, imported)
    for cls in (BitmapMasks, PolygonMasks, RLEMasks):
        assert MASK_TYPES[cls.__name__] is cls
