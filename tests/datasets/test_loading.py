"""LoadImageFromFile: bit depths, channel counts, TIFF and EXIF orientation, each converted to the
network's uint8 BGR input by its documented rule."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from instseg.datasets.image_io import BadImageError, exif_orientation
from instseg.datasets.transforms import LoadAnnotations, LoadImageFromFile
from instseg.registry import TRANSFORMS

H, W = 20, 30


def _gradient(dtype: type, high: float, channels: int = 0) -> np.ndarray:
    """[H, W] (or [H, W, channels]) ramp from high / 4 to high, distinct per channel."""
    ramp = np.linspace(high / 4, high, H * W).reshape(H, W)
    if channels:
        ramp = np.stack([ramp * (c + 1) / channels for c in range(channels)], axis=-1)
    return ramp.astype(dtype)


def _load(path: Path, **kwargs) -> np.ndarray:
    return LoadImageFromFile(**kwargs)(dict(img_path=str(path)))['img']


def test_registered_and_arguments_checked() -> None:
    assert isinstance(TRANSFORMS.build(dict(type='LoadImageFromFile')), LoadImageFromFile)
    for bad, match in [(dict(color_type='colour'), "'colour'"),
                       (dict(depth_scaling='percentile'), "'percentile'"),
                       (dict(depth_scaling=(10, 5)), r'low < high: \(10, 5\)'),
                       (dict(imdecode_backend='pillow'), "'pillow'")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            LoadImageFromFile(**bad)


def test_8bit_rgb_png_is_read_as_stored_bgr(tmp_path: Path) -> None:
    bgr = _gradient(np.uint8, 255, channels=3)
    cv2.imwrite(str(tmp_path / 'a.png'), bgr)
    out = LoadImageFromFile()(dict(img_path=str(tmp_path / 'a.png'), height=H, width=W))
    np.testing.assert_array_equal(out['img'], bgr)
    assert out['img_shape'] == out['ori_shape'] == (H, W)


def test_grayscale_is_repeated_into_three_channels(tmp_path: Path) -> None:
    gray = _gradient(np.uint8, 200)
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    img = _load(tmp_path / 'g.png')
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)
    np.testing.assert_array_equal(_load(tmp_path / 'g.png', color_type='grayscale'), gray)


def test_rgba_drops_alpha_without_blending(tmp_path: Path) -> None:
    bgra = _gradient(np.uint8, 255, channels=4)
    bgra[:5, :, 3] = 0  # fully transparent rows keep their colour
    cv2.imwrite(str(tmp_path / 'a.png'), bgra)
    np.testing.assert_array_equal(_load(tmp_path / 'a.png'), bgra[..., :3])
    gray_alpha = np.dstack([_gradient(np.uint8, 255), np.full((H, W), 9, np.uint8)])
    Image.fromarray(gray_alpha, 'LA').save(tmp_path / 'la.png')
    img = _load(tmp_path / 'la.png')
    np.testing.assert_array_equal(img, np.repeat(gray_alpha[..., :1], 3, axis=2))


@pytest.mark.parametrize('suffix', ['.png', '.tif'])
def test_16bit_gray_min_max_scaling_is_the_default(tmp_path: Path, suffix: str) -> None:
    raw = _gradient(np.uint16, 4095)  # a 12-bit camera in a 16-bit file
    cv2.imwrite(str(tmp_path / f'a{suffix}'), raw)
    img = _load(tmp_path / f'a{suffix}')
    lo, hi = float(raw.min()), float(raw.max())
    expected = np.rint((raw - lo) * 255.0 / (hi - lo)).astype(np.uint8)
    assert img.dtype == np.uint8 and img.shape == (H, W, 3)
    np.testing.assert_array_equal(img[..., 0], expected)
    assert (img.min(), img.max()) == (0, 255)


def test_16bit_fixed_scalings(tmp_path: Path) -> None:
    raw = _gradient(np.uint16, 4095)
    cv2.imwrite(str(tmp_path / 'a.png'), raw)
    full = _load(tmp_path / 'a.png', depth_scaling='dtype')[..., 0]
    np.testing.assert_array_equal(full, np.rint(raw * (255.0 / 65535)).astype(np.uint8))
    assert full.max() == 16  # the whole 16-bit range: a 12-bit image stays dark
    window = _load(tmp_path / 'a.png', depth_scaling=(1000, 3000))[..., 0]
    expected = np.rint((np.clip(raw, 1000, 3000) - 1000.0) * (255.0 / 2000)).astype(np.uint8)
    np.testing.assert_array_equal(window, expected)


def test_16bit_color_tiff_scales_all_channels_together(tmp_path: Path) -> None:
    raw = _gradient(np.uint16, 60000, channels=3)
    cv2.imwrite(str(tmp_path / 'c.tif'), raw)
    img = _load(tmp_path / 'c.tif')
    lo, hi = float(raw.min()), float(raw.max())
    np.testing.assert_array_equal(img, np.rint((raw - lo) * 255.0 / (hi - lo)).astype(np.uint8))
    assert img[..., 0].max() < img[..., 2].max()  # channel balance kept
    assert _load(tmp_path / 'c.tif', color_type='unchanged').dtype == np.uint16


def test_float_tiff_and_to_float32(tmp_path: Path) -> None:
    raw = _gradient(np.float32, 0.5)
    cv2.imwrite(str(tmp_path / 'f.tif'), raw)
    img = _load(tmp_path / 'f.tif', depth_scaling='dtype', to_float32=True)
    assert img.dtype == np.float32 and img.shape == (H, W, 3)
    np.testing.assert_array_equal(img[..., 1], np.rint(raw * 255.0))


def test_constant_16bit_image_becomes_black(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'c.png'), np.full((H, W), 777, np.uint16))
    assert _load(tmp_path / 'c.png').max() == 0


def _save_with_orientation(array_rgb: np.ndarray, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array_rgb).save(path, exif=exif, **({'quality': 95} if path.suffix ==
                                                         '.jpg' else {}))  # fmt: skip


def _asymmetric_rgb() -> np.ndarray:
    """A stored image whose every flip and rotation differs: a bright block near one corner."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[2:8, 3:12] = (250, 200, 100)
    rgb[12:18, 20:27, 1] = 120
    return rgb


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_matches_pil_exactly(tmp_path: Path, orientation: int) -> None:
    rgb = _asymmetric_rgb()
    path = tmp_path / 'o.png'
    _save_with_orientation(rgb, path, orientation)
    assert exif_orientation(path.read_bytes()) == orientation
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))[..., ::-1]
    np.testing.assert_array_equal(_load(path), expected)
    np.testing.assert_array_equal(_load(path, color_type='color_ignore_orientation'),
                                  rgb[..., ::-1])  # fmt: skip


def test_exif_rotated_jpeg_lines_up_with_its_annotations(tmp_path: Path) -> None:
    """Orientation 6 (rotate 90 clockwise): stored 20x30, displayed 30x20; the annotation tool
    saw the displayed image, so the record and polygon are in displayed coordinates."""
    rgb = _asymmetric_rgb()
    path = tmp_path / 'rot.jpg'
    _save_with_orientation(rgb, path, 6)
    # The stored block rows 2:8, cols 3:12 shows at displayed rows 3:12, cols 12:18.
    polygon = [12.0, 3.0, 18.0, 3.0, 18.0, 12.0, 12.0, 12.0]
    instance = dict(bbox=[12.0, 3.0, 18.0, 12.0], bbox_label=0, ignore_flag=0, mask=[polygon])
    record = dict(img_path=str(path), img_id=1, height=W, width=H, instances=[instance])
    out = LoadAnnotations(with_mask=True)(LoadImageFromFile()(record))
    assert out['img'].shape == (W, H, 3)
    mask = out['gt_masks'].to_ndarray()[0].astype(bool)
    assert mask.sum() == 6 * 9
    assert out['img'][mask].min() > 90  # every mask pixel is on the bright block
    assert out['img'][~mask].max() < 130  # and the block is nowhere else
    stored = dict(record, height=H, width=W)
    with pytest.raises(BadImageError, match=r"rot\.jpg: image is 30x20 .* says 20x30; the sizes "
                       r"are transposed.*color_ignore_orientation"):  # fmt: skip
        LoadImageFromFile()(stored)
    raw = LoadImageFromFile(color_type='color_ignore_orientation')(stored)['img']
    assert raw.shape[:2] == (H, W)


def test_png_without_exif_is_not_decoded_twice(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((H, W, 3), np.uint8))
    assert exif_orientation((tmp_path / 'a.png').read_bytes()) == 1
    assert exif_orientation(b'not an image') == 1


def test_broken_files_are_named(tmp_path: Path) -> None:
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(BadImageError, match=r'empty\.png: an empty file'):
        _load(tmp_path / 'empty.png')
    with pytest.raises(FileNotFoundError, match=r'nope\.png: image file not found'):
        _load(tmp_path / 'nope.png')
    (tmp_path / 'x.tif').write_bytes(b'II*\x00 not really a tiff')
    with pytest.raises(BadImageError, match=r'x\.tif: not a decodable image'):
        _load(tmp_path / 'x.tif')


def _fake_tifffile(monkeypatch: pytest.MonkeyPatch, array: np.ndarray) -> None:
    module = types.ModuleType('tifffile')
    module.imread = lambda buffer, key=0: array
    monkeypatch.setitem(sys.modules, 'tifffile', module)


def test_tifffile_reads_what_opencv_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = _gradient(np.uint16, 60000, channels=3)
    _fake_tifffile(monkeypatch, rgb)
    (tmp_path / 'x.tif').write_bytes(b'II*\x00 compressed in a way OpenCV lacks')
    img = _load(tmp_path / 'x.tif', depth_scaling='dtype')
    np.testing.assert_array_equal(img, np.rint(rgb[..., ::-1] * (255 / 65535)).astype(np.uint8))
    _fake_tifffile(monkeypatch, np.moveaxis(rgb, -1, 0))  # planar samples: [3, H, W]
    np.testing.assert_array_equal(_load(tmp_path / 'x.tif', depth_scaling='dtype'), img)
    _fake_tifffile(monkeypatch, np.zeros((H, W, 5), np.uint8))
    with pytest.raises(BadImageError, match=r'x\.tif: cannot make an image of shape \(20, 30, 5\)'):
        _load(tmp_path / 'x.tif')
