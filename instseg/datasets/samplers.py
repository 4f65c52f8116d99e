"""Batch samplers."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import BatchSampler, Sampler

from instseg.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class AspectRatioBatchSampler(BatchSampler):
    """Batches images of the same orientation (landscape or portrait) to waste less padding.

    Indices come from ``sampler`` in its order; each index goes to the landscape or portrait bucket
    by the dataset's ``get_data_info(i)['width'/'height']`` and a bucket is yielded when full.
    At the
    end, leftovers are batched together unless ``drop_last``.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
        super().__init__(sampler, batch_size, drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        dataset = self.sampler.dataset
        buckets: list[list[int]] = [[], []]
        for idx in self.sampler:
            info = dataset.get_data_info(idx)
            bucket = buckets[0 if info['width'] >= info['height'] else 1]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()
        left = buckets[0] + buckets[1]
        while left:
            batch, left = left[: self.batch_size], left[self.batch_size :]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
