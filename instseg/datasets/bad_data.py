"""Bad-data bookkeeping for dataset parsing: what was dropped, how often, with examples.

Datasets from users come with missing files, degenerate boxes and broken ids. A parser records
each problem here (naming the file and the id), keeps going, and logs one summary at the end;
in strict mode the same summary is raised instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Problem kind -> what it is and what the parser does about it.
PROBLEMS: dict[str, str] = {
    'bad_image_entry': 'image entries without id, file_name, height or width, or with a side '
    '< 1 (dropped)',
    'duplicate_image_id': 'images whose id was used before (dropped; their annotations go to '
    'the first image with that id)',
    'missing_image_file': 'images whose file does not exist (dropped)',
    'duplicate_ann_id': 'annotations whose id was used before (skipped; COCO evaluation keeps '
    'only one annotation per id, so renumber them)',
    'dangling_image': 'annotations with an unknown image_id (skipped)',
    'bad_category': 'annotations with a category_id that is not in categories (skipped)',
    'bad_box': 'annotations without a finite [x, y, w, h] bbox (skipped)',
    'empty_box': 'annotations with box width < 1, height < 1 or area <= 0 (skipped)',
    'box_outside_image': 'annotations whose box lies outside the image (skipped)',
    'bad_polygon': 'annotations with a polygon of fewer than 3 points (that polygon dropped; '
    'the annotation skipped when none is left)',
    'bad_mask': 'annotations whose segmentation is missing, malformed, or an RLE of another '
    'size than the image (skipped)',
}


class ParseReport:
    """Counts of :data:`PROBLEMS` met while parsing ``source``, with the first few examples.

    Args:
        source: the annotation file, named in the summary.
        max_examples: examples kept per problem kind.
    """

    def __init__(self, source: str, max_examples: int = 5) -> None:
        self.source = source
        self.max_examples = max_examples
        self.counts = dict.fromkeys(PROBLEMS, 0)
        self.examples: dict[str, list[str]] = {kind: [] for kind in PROBLEMS}

    def add(self, kind: str, message: str) -> None:
        """Count one problem of ``kind``; ``message`` names the file and id."""
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.max_examples:
            self.examples[kind].append(message)

    @property
    def num_problems(self) -> int:
        return sum(self.counts.values())

    def details(self) -> str:
        """One block per problem kind met: count, meaning, and the first examples."""
        lines = []
        for kind, count in self.counts.items():
            if not count:
                continue
            lines.append(f'  {count} {kind}: {PROBLEMS[kind]}, e.g.')
            lines.extend(f'    {example}' for example in self.examples[kind])
            if count > len(self.examples[kind]):
                lines.append(f'    ... and {count - len(self.examples[kind])} more')
        return '\n'.join(lines)


def valid_polygons(segmentation: Sequence) -> list:
    """The parts of a COCO polygon list with >= 3 (x, y) points and an even length."""
    polygon_types = (list, tuple, np.ndarray)
    return [
        p for p in segmentation if isinstance(p, polygon_types) and len(p) >= 6 and len(p) % 2 == 0
    ]


def box_problem(bbox: object, area: object, width: int, height: int) -> str | None:
    """Which of 'bad_box', 'empty_box', 'box_outside_image' a COCO [x, y, w, h] box has, or None.

    Matches mmdetection: boxes with w < 1 or h < 1, a non-positive ``area``, or no overlap with
    the ``width`` x ``height`` image are unusable.
    """
    try:
        x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 'bad_box'
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return 'bad_box'
    try:
        area_value = w * h if area is None else float(area)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        area_value = w * h
    if w < 1 or h < 1 or not area_value > 0:
        return 'empty_box'
    if min(x + w, width) <= max(x, 0.0) or min(y + h, height) <= max(y, 0.0):
        return 'box_outside_image'
    return None
