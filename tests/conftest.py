"""Shared fixtures: the real datasets in ../shared/data and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests run in parallel processes (pytest -n 2) on a 2-core machine: one thread each avoids
# oversubscription, which makes small convolutions several times slower.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def shared_data(name: str) -> Path:
    """Path of a dataset under ../shared/data; fails under CI and skips elsewhere when it is
    missing."""
    path = SHARED_DATA / name
    if not path.exists():
        message = f'{path} is missing (tests read the real datasets from ../shared/data)'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def coco_tiny() -> Path:
    return shared_data('coco_tiny')


@pytest.fixture
def nuclei() -> Path:
    return shared_data('nuclei')


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
