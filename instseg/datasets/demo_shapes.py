"""A generated COCO-format dataset of coloured shapes on textured backgrounds, for demos and tests.

Every image holds 2-8 objects of 4 classes (ellipse, rectangle, triangle, ring), each class in its
own hue family (red, green, blue, yellow, with jittered hue, saturation and brightness), rotated
and elongated, 40-100 px long at 160 px, some overlapping (later objects occlude earlier ones and
the visible part is annotated) and some touching. An object that would leave an earlier one with
less than 30% of its area visible is not placed, so no instance is mostly hidden and every painted
object is annotated. Masks are annotated as compressed COCO RLE, and as polygons in every other
image where a polygon reproduces the visible mask exactly, so both annotation paths run.
Category ids are non-contiguous (1, 3, 5, 7). Output is byte-identical for a given seed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from instseg.registry import DATASETS

from .coco import CocoDataset

SHAPE_CLASSES = ('ellipse', 'rectangle', 'triangle', 'ring')
SHAPE_CAT_IDS = (1, 3, 5, 7)
# Bump when the generator's output changes, so stale sets on disk are regenerated.
_GENERATOR_VERSION = 4
_MIN_VISIBLE = 0.3  # an object must keep this fraction of its area visible


def _shape_patch(rng: np.random.Generator, label: int, scale: float) -> np.ndarray:
    """A tight bool mask [h, w] of one randomly sized, elongated and rotated shape."""
    # Long sides of 40-100 px at 160 px: smaller objects are a few cells of the stride-4 feature
    # map, where 28x28 masks and box deltas are coarse and a demo would mostly measure pixel
    # rounding.
    major = rng.uniform(40.0, 100.0) * scale
    aspect = rng.uniform(0.6, 1.0) if SHAPE_CLASSES[label] == 'ring' else rng.uniform(0.45, 1.0)
    angle = rng.uniform(0.0, 180.0)
    side = int(math.ceil(major)) + 6
    centre = side / 2.0
    patch = np.zeros((side, side), np.uint8)
    name = SHAPE_CLASSES[label]
    if name in ('ellipse', 'ring'):
        # A ring needs a minor semi-axis of >= 6 px to keep both its hole and a 3 px wide band.
        min_axis = 6 if name == 'ring' else 2
        axes = (max(round(major / 2), min_axis), max(round(major * aspect / 2), min_axis))
        cv2.ellipse(patch, (int(centre), int(centre)), axes, angle, 0, 360, 1, -1)
        if name == 'ring':
            inner = min(rng.uniform(0.45, 0.65), 1.0 - 3.0 / axes[1])
            inner_axes = (int(axes[0] * inner), int(axes[1] * inner))
            cv2.ellipse(patch, (int(centre), int(centre)), inner_axes, angle, 0, 360, 0, -1)
    else:
        if name == 'rectangle':
            corners = cv2.boxPoints(((centre, centre), (major, major * aspect), angle))
        else:
            # Vertices spread around a circle (no sliver triangles), then squashed and rotated.
            thetas = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.0, 4.0]) * np.pi / 3
            thetas = thetas + rng.uniform(-0.35, 0.35, size=3)
            points = np.stack([np.cos(thetas), np.sin(thetas) * aspect], axis=1) * major / 2
            rot = np.deg2rad(angle)
            rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
            corners = points @ rotation.T + centre
        cv2.fillPoly(patch, [np.round(corners).astype(np.int32)], 1)
    ys, xs = np.nonzero(patch)
    return patch[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(bool)


def _paste(patch: np.ndarray, y0: int, x0: int, size: int) -> np.ndarray:
    full = np.zeros((size, size), bool)
    full[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
    return full


def _propose(
    rng: np.random.Generator, patch: np.ndarray, placed: list[dict], size: int
) -> tuple[int, int] | None:
    """Top-left corner for ``patch``: free, overlapping a placed object, or touching one."""
    h, w = patch.shape
    mode = rng.choice(['free', 'overlap', 'touch'], p=[0.5, 0.3, 0.2]) if placed else 'free'
    if mode == 'free':
        return int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    other = placed[int(rng.integers(len(placed)))]
    cy, cx = other['centre']
    dy, dx = np.sin(theta := rng.uniform(0, 2 * np.pi)), np.cos(theta)
    if mode == 'overlap':
        reach = rng.uniform(0.35, 0.8) * (max(h, w) + max(other['patch'].shape)) / 2
        return round(cy + reach * dy - h / 2), round(cx + reach * dx - w / 2)
    # Slide out from the other object's centre until the two no longer share a pixel.
    for step in range(size):
        y0, x0 = round(cy + step * dy - h / 2), round(cx + step * dx - w / 2)
        if y0 < 0 or x0 < 0 or y0 + h > size or x0 + w > size:
            return None
        if not (other['full'][y0 : y0 + h, x0 : x0 + w] & patch).any():
            return y0, x0
    return None


def _layout(rng: np.random.Generator, size: int) -> list[dict]:
    """Place 2-8 objects so that each keeps >= 30% of its area visible under later ones."""
    target = int(rng.integers(2, 9))
    placed: list[dict] = []
    attempts = 0
    while len(placed) < target and attempts < 40 * target:
        attempts += 1
        label = int(rng.integers(len(SHAPE_CLASSES)))
        patch = _shape_patch(rng, label, size / 160.0)
        corner = _propose(rng, patch, placed, size)
        if corner is None:
            continue
        y0, x0 = corner
        h, w = patch.shape
        if y0 < 0 or x0 < 0 or y0 + h > size or x0 + w > size:
            continue
        full = _paste(patch, y0, x0, size)
        if any((obj['visible'] & ~full).sum() < _MIN_VISIBLE * obj['area'] for obj in placed):
            continue
        for obj in placed:
            obj['visible'] &= ~full
        placed.append(
            dict(label=label, patch=patch, full=full, visible=full.copy(), area=int(patch.sum()),
                 centre=(y0 + h / 2, x0 + w / 2))
        )  # fmt: skip
    return placed


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured float32 [size, size, 3] background (gradient, blobs, stripes) and its mean."""
    base = rng.uniform(50, 205, size=3)
    other = np.clip(base + rng.uniform(-35, 35, size=3), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy - min(0, np.cos(angle)) - min(0, np.sin(angle))
    t = (t / t.max())[..., None]
    img = base * (1 - t) + other * t
    blobs = rng.normal(0, 12, size=(5, 5, 3)).astype(np.float32)
    img += cv2.resize(blobs, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.6:
        stripe_angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 20) / size
        phase = np.cos(stripe_angle) * xx + np.sin(stripe_angle) * yy
        img += (rng.uniform(6, 16) * np.sin(2 * np.pi * phase / period))[..., None]
    return img.astype(np.float32), base


# OpenCV hue (0-180) at the centre of each class's colour family: red, green, blue, yellow.
_CLASS_HUES = (0, 60, 120, 28)


def _colours(
    rng: np.random.Generator, background: np.ndarray, labels: list[int]
) -> list[np.ndarray]:
    """BGR object colours from each class's hue family, far from the background and each other.

    Each class has its own hue family (with jitter, and random saturation and brightness), on top of
    its own shape: a model trained from scratch on a CPU for a few minutes can then learn the
    classes,
    which shape alone does not allow in that budget.
    """
    colours: list[np.ndarray] = []
    for label in labels:
        for tries in range(200):
            hue = (_CLASS_HUES[label] + rng.uniform(-10, 10)) % 180
            hsv = np.array([[[hue, rng.uniform(140, 255), rng.uniform(110, 255)]]], np.float32)
            colour = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
            far_from_bg = np.linalg.norm(colour - background) >= 110 - tries * 0.3
            far_from_others = all(np.linalg.norm(colour - c) >= 40 - tries * 0.2 for c in colours)
            if far_from_bg and far_from_others:
                break
        colours.append(colour)
    return colours


def _polygons(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons that rasterise back to exactly ``mask``, or None (holes, thin parts)."""
    # Contours of the 2x upsampled mask run along pixel edges (to within 0.25 px), so
    # pycocotools' rasterisation reproduces the mask instead of shaving its border pixels.
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.5, True).reshape(-1, 2)
        if len(contour) >= 3:
            polygons.append([float(v) for v in ((contour + 0.5) / 2).ravel()])
    if not polygons:
        return None
    h, w = mask.shape
    # Equal compressed RLEs <=> equal masks.
    rasterised = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
    exact = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return polygons if rasterised['counts'] == exact['counts'] else None


def _make_image(rng: np.random.Generator, size: int, as_polygons: bool):
    """One BGR uint8 image [size, size, 3] and its annotations (without ids)."""
    placed = _layout(rng, size)
    img, bg_colour = _background(rng, size)
    labels = [obj['label'] for obj in placed]
    for obj, colour in zip(placed, _colours(rng, bg_colour, labels), strict=True):
        img[obj['full']] = colour
    img += rng.normal(0, 4, size=img.shape).astype(np.float32)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)

    annotations = []
    for obj in placed:
        visible = obj['visible']
        segmentation = _polygons(visible) if as_polygons else None
        rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
        if segmentation is None:
            segmentation = dict(size=[size, size], counts=rle['counts'].decode('ascii'))
        annotations.append(
            dict(
                category_id=SHAPE_CAT_IDS[obj['label']],
                segmentation=segmentation,
                area=int(mask_utils.area(rle)),
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                iscrowd=0,
            )
        )
    return img, annotations


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so concurrent generators take turns."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the temp-dir-and-rename still applies
        yield
        return
    # Locking the folder itself leaves no lock file behind.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _generator_info(ann_file: Path) -> dict | None:
    """The generation arguments stored in a demo annotation file; None for other files."""
    try:
        with open(ann_file) as f:
            return json.load(f).get('info', {}).get('instseg_demo_shapes')
    except (OSError, ValueError):
        return None


# Written into every generated image folder: a folder holding it is instseg's to replace.
MARKER_NAME = '.instseg-demo-shapes'


def _generated_by_instseg(img_dir: Path, ann_file: Path) -> bool:
    """Whether ``img_dir`` may be replaced: it is absent or empty, holds instseg's marker, or (sets
    written before the marker existed) holds exactly the images that ``ann_file``, a generated
    annotation file, lists."""
    if not img_dir.exists():
        return True
    if not img_dir.is_dir():
        return False
    names = {p.name for p in img_dir.iterdir()}
    if not names or MARKER_NAME in names:
        return True
    if _generator_info(ann_file) is None:
        return False
    with open(ann_file) as f:
        listed = {image['file_name'] for image in json.load(f).get('images', [])}
    return names == listed


def write_shapes_split(
    img_dir: str | Path, ann_file: str | Path, num_images: int, image_size: int = 160, seed: int = 0
) -> None:
    """Generate ``num_images`` PNGs into ``img_dir`` and their COCO json ``ann_file``.

    Does nothing if ``ann_file`` already holds this split generated with the same arguments.
    Only a folder that is absent, empty or generated by instseg (it holds ``MARKER_NAME``) is
    written or replaced, and only an annotation file that is absent or generated; anything else
    raises FileExistsError naming it, and nothing is touched. Images are written to a temporary
    folder renamed into place, and the json last, so a reader that finds the json finds every
    image. The image stream depends on ``seed`` and the json's file name, so train and val differ
    and image k is the same whatever ``num_images``.
    """
    img_dir, ann_file = Path(img_dir).absolute(), Path(ann_file).absolute()
    if img_dir == ann_file.parent or img_dir in ann_file.parents:
        raise ValueError(f'Image folder {img_dir} must not contain the annotation file {ann_file}')
    info = dict(version=_GENERATOR_VERSION, num_images=num_images, image_size=image_size, seed=seed)
    with _exclusive(ann_file.parent):
        if img_dir.is_dir() and _generator_info(ann_file) == info:
            return
        if ann_file.exists() and _generator_info(ann_file) is None:
            raise FileExistsError(
                f'{ann_file} exists and was not generated by instseg: not replacing it with '
                'generated demo annotations; point ann_file elsewhere or use CocoDataset'
            )
        if not _generated_by_instseg(img_dir, ann_file):
            raise FileExistsError(
                f'{img_dir} holds files that instseg did not generate: not writing the demo '
                f'images there. Point data_root / data_prefix at an empty or new folder (instseg '
                f'marks the folders it generates with a {MARKER_NAME} file), or use CocoDataset '
                'to train on your own images'
            )
        tag = f'{os.getpid()}-{uuid.uuid4().hex[:8]}'
        tmp_dir = img_dir.parent / f'.{img_dir.name}.tmp-{tag}'
        tmp_ann = ann_file.parent / f'.{ann_file.name}.tmp-{tag}'
        old_dir = img_dir.parent / f'.{img_dir.name}.old-{tag}'
        try:
            tmp_dir.mkdir(parents=True)
            coco = _generate(tmp_dir, ann_file.name, num_images, image_size, seed)
            (tmp_dir / MARKER_NAME).write_text(json.dumps(info) + '\n')
            coco['info'] = dict(description='instseg demo shapes', instseg_demo_shapes=info)
            tmp_ann.write_text(json.dumps(coco, separators=(',', ':')))
            if img_dir.exists():
                os.rename(img_dir, old_dir)
            os.rename(tmp_dir, img_dir)
            os.replace(tmp_ann, ann_file)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            shutil.rmtree(old_dir, ignore_errors=True)  # instseg's own images, checked above
            tmp_ann.unlink(missing_ok=True)


def _generate(out_dir: Path, split_name: str, num_images: int, size: int, seed: int) -> dict:
    split_key = zlib.crc32(split_name.encode())
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_key, index])
        img, anns = _make_image(rng, size, as_polygons=index % 2 == 1)
        file_name = f'{index:06d}.png'
        ok, png = cv2.imencode('.png', img)
        if not ok:
            raise RuntimeError(f'could not encode {file_name}')
        (out_dir / file_name).write_bytes(png.tobytes())
        images.append(dict(id=index + 1, file_name=file_name, height=size, width=size))
        for ann in anns:
            annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, **ann))
    categories = [
        dict(id=cat_id, name=name, supercategory='shape')
        for cat_id, name in zip(SHAPE_CAT_IDS, SHAPE_CLASSES, strict=True)
    ]
    return dict(images=images, annotations=annotations, categories=categories, licenses=[])


def generate_shapes_dataset(
    root: str | Path, num_train: int = 320, num_val: int = 80, image_size: int = 160, seed: int = 0
) -> None:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json``."""
    root = Path(root)
    for split, num in (('train', num_train), ('val', num_val)):
        write_shapes_split(
            root / split, root / 'annotations' / f'instances_{split}.json', num, image_size, seed
        )


@DATASETS.register_module()
class DemoShapesDataset(CocoDataset):
    """:class:`CocoDataset` over the generated shapes set, generating it first when needed.

    The split is written to ``data_prefix['img']`` and ``ann_file`` (relative to ``data_root``)
    when ``ann_file`` is missing or was generated with other arguments; a non-generated
    ``ann_file`` is read as is. E.g. ``DemoShapesDataset(data_root='data/shapes',
    ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
    num_images=320)``.

    Args:
        num_images: images in this split, or a dict by split name (``dict(train=400, val=50)``)
            where the split is ``ann_file``'s stem without its ``instances_`` prefix.
        image_size: side of the square images in pixels.
        seed: generation seed.
        Others as :class:`CocoDataset`.
    """

    METAINFO: dict = dict(
        classes=SHAPE_CLASSES,
        palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 160, 0)],
    )

    def __init__(
        self,
        *args,
        num_images: int | dict[str, int] = 100,
        image_size: int = 160,
        seed: int = 0,
        **kwargs,
    ) -> None:
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        super().__init__(*args, **kwargs)

    def _split_size(self) -> int:
        if not isinstance(self.num_images, dict):
            return int(self.num_images)
        split = Path(self.ann_file).stem.removeprefix('instances_')
        if split not in self.num_images:
            raise KeyError(
                f'num_images={self.num_images} has no entry for split {split!r} '
                f'(from ann_file {self.ann_file})'
            )
        return int(self.num_images[split])

    def load_data_list(self) -> list[dict]:
        """Generate the split if needed, then parse it as COCO."""
        ann_file = Path(self.ann_file)
        if not ann_file.exists() or _generator_info(ann_file) is not None:
            img_dir = self.data_prefix.get('img', '')
            write_shapes_split(img_dir, ann_file, self._split_size(), self.image_size, self.seed)
        return super().load_data_list()
