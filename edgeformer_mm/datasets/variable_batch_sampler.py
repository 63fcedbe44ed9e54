"""The multi-scale variable batch sampler of the official EdgeFormer training.

Each batch has one square crop size, drawn uniformly at random from a few
sizes, and a batch size that keeps the number of pixels per batch at least
that of the base batch. The rules follow the official training code
(ml-cvnets as forked by hkzhang91/EdgeFormer); this is an independent
implementation for mmengine's data loaders.
"""
import itertools
from typing import Dict, Iterator, List, Optional, Sequence, Sized, Tuple

import numpy as np
from mmengine.dist import get_world_size, sync_random_seed
from mmpretrain.models.utils import make_divisible
from torch.utils.data import BatchSampler

from edgeformer_mm.registry import DATA_SAMPLERS, register
from edgeformer_mm.utils.validation import check_positive_int


def multi_scale_crop_sizes(min_size: int = 160,
                           max_size: int = 320,
                           num_sizes: int = 5,
                           base_size: int = 256,
                           divisor: int = 32) -> Tuple[int, ...]:
    """Crop sizes of the official multi-scale sampler.

    ``num_sizes`` evenly spaced sizes from ``min_size`` to ``max_size``, and
    ``base_size``, are each rounded to the nearest multiple of ``divisor``
    (never down by more than 10%, as :func:`make_divisible` rounds); equal
    results are merged. The defaults are the official ImageNet recipe: 160,
    200, 240, 280, 320 and 256 give ``(160, 192, 256, 288, 320)``.

    Args:
        min_size (int): The smallest size before rounding. Defaults to 160.
        max_size (int): The largest size before rounding. Defaults to 320.
        num_sizes (int): How many evenly spaced sizes. Defaults to 5.
        base_size (int): The size the base batch is given for, always among
            the sizes. Defaults to 256.
        divisor (int): Every size is a multiple of it (32: the backbone's
            total stride). Defaults to 32.

    Returns:
        tuple[int]: The crop sizes, ascending.
    """
    for name, value in (('min_size', min_size), ('max_size', max_size),
                        ('num_sizes', num_sizes), ('base_size', base_size),
                        ('divisor', divisor)):
        check_positive_int(value, name)
    if max_size < min_size:
        raise ValueError(f'max_size ({max_size}) must not be smaller than '
                         f'min_size ({min_size})')
    sizes = [*np.linspace(min_size, max_size, num_sizes), base_size]
    return tuple(sorted({int(make_divisible(s, divisor)) for s in sizes}))


def _scaled_batch_size(crop_size: int, base_crop_size: int,
                       base_batch_size: int, divisor: int) -> int:
    """The official batch size for square crops of ``crop_size``."""
    # The same number of pixels as the base batch; the official code rounds
    # the ratio to 2 decimals, then truncates it.
    same_pixels = base_batch_size * base_crop_size**2 / crop_size**2
    batch_size = max(base_batch_size, int(round(same_pixels, 2)))
    # The official code rounds to a multiple of the number of GPUs (meant to
    # split a DataParallel batch evenly), also for per-GPU DDP batches.
    return int(make_divisible(batch_size, divisor))


@register(DATA_SAMPLERS)
class VariableBatchSampler(BatchSampler):
    """Batches of one random square crop size each, sized by their pixels.

    The multi-scale sampler of the official EdgeFormer (ml-cvnets) training.
    Before each batch a crop size is drawn uniformly from ``crop_sizes``; the
    batch then takes the next indices of the wrapped sampler, as many as
    ``base batch * base_crop_size**2 / crop_size**2`` (rounded to 2 decimals
    and truncated), but never fewer than the base batch, rounded to the
    nearest multiple of ``batch_size_divisor``. It yields lists of
    ``(index, crop_size)`` tuples, for :class:`VariableCropDataset` and
    :class:`VariableRandomResizedCrop`.

    With the official ImageNet recipe (base 128 images at 256) the per-GPU
    batches are 328 at 160, 224 at 192 (228 on 4 GPUs, 227 on 1), and 128 at
    256, 288 and 320.

    The wrapped sampler does the shuffling and the sharding across ranks
    (e.g. mmengine's ``DefaultSampler``). The crop sizes are drawn from a
    generator seeded with ``(seed, epoch)``, identical on every rank, so all
    ranks take batches of the same size in step; they must have as many
    indices each (``DefaultSampler`` with its default ``round_up=True``).

    Because the sizes are random, the number of batches varies a little from
    one epoch to the next, as in the official code; ``len()`` gives that of
    the current epoch, which mmengine sets on the wrapped sampler.

    Args:
        sampler (Sampler): The sampler of the indices, built by mmengine's
            Runner from the data loader's ``sampler``.
        batch_size (int): The batch size at ``base_crop_size`` (the base
            batch), the data loader's ``batch_size``.
        crop_sizes (Sequence[int]): The square crop sizes to draw from (see
            :func:`multi_scale_crop_sizes`). Defaults to
            ``(160, 192, 256, 288, 320)``.
        base_crop_size (int): The crop size the base batch is given for.
            Defaults to 256.
        drop_last (bool): Whether to drop the last batch of an epoch if it
            is short. Defaults to False.
        fill_last (bool): Whether to complete a short last batch with the
            first indices of the epoch, as the official code does. Defaults
            to False: the last batch is kept short and every index comes once
            per epoch.
        batch_size_divisor (int, optional): Every batch size is rounded to a
            multiple of it. Defaults to None: the world size, as officially.
        seed (int, optional): The seed of the crop size draws. It must be
            the same on every rank. Defaults to None: the wrapped sampler's
            ``seed`` if it has one, else a seed synchronised across ranks.
    """

    def __init__(self,
                 sampler: Sized,
                 batch_size: int,
                 crop_sizes: Sequence[int] = (160, 192, 256, 288, 320),
                 base_crop_size: int = 256,
                 drop_last: bool = False,
                 fill_last: bool = False,
                 batch_size_divisor: Optional[int] = None,
                 seed: Optional[int] = None) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if isinstance(crop_sizes, int) or len(crop_sizes) == 0:
            raise ValueError('crop_sizes must be a non-empty sequence of '
                             f'ints, got {crop_sizes!r}')
        for crop_size in crop_sizes:
            check_positive_int(crop_size, 'every crop size')
        if len(set(crop_sizes)) != len(crop_sizes):
            raise ValueError(f'crop_sizes has duplicates: {crop_sizes}')
        check_positive_int(base_crop_size, 'base_crop_size')
        if not isinstance(fill_last, bool):
            raise ValueError(f'fill_last must be a bool, got {fill_last!r}')
        if drop_last and fill_last:
            raise ValueError('drop_last and fill_last exclude each other')
        if batch_size_divisor is None:
            batch_size_divisor = get_world_size()
        check_positive_int(batch_size_divisor, 'batch_size_divisor')
        if seed is None:
            seed = getattr(sampler, 'seed', None)
        if seed is None:
            seed = sync_random_seed()
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f'seed must be a non-negative int, got {seed!r}')

        self.crop_sizes = tuple(sorted(crop_sizes))
        self.base_crop_size = base_crop_size
        self.fill_last = fill_last
        self.seed = seed
        divisor = batch_size_divisor
        self.batch_sizes: Dict[int, int] = {
            size: _scaled_batch_size(size, base_crop_size, batch_size, divisor)
            for size in self.crop_sizes
        }
        # Used when the wrapped sampler keeps no epoch of its own.
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The current epoch, as set on the wrapped sampler by mmengine."""
        return getattr(self.sampler, 'epoch', self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and on the wrapped sampler.

        Args:
            epoch (int): The epoch.
        """
        self._epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def _crop_size_draws(self) -> Iterator[int]:
        """The crop sizes of this epoch's batches, the same on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        while True:
            yield self.crop_sizes[rng.integers(len(self.crop_sizes))]

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        indices = iter(self.sampler)
        longest_batch = max(self.batch_sizes.values())
        first_indices: List[int] = []  # to fill the last batch
        for crop_size in self._crop_size_draws():
            batch_size = self.batch_sizes[crop_size]
            batch = list(itertools.islice(indices, batch_size))
            if self.fill_last and len(first_indices) < longest_batch:
                first_indices += batch[:longest_batch - len(first_indices)]
            short = len(batch) < batch_size
            if not batch or (short and self.drop_last):
                return
            if short and self.fill_last:
                batch += itertools.islice(
                    itertools.cycle(first_indices), batch_size - len(batch))
            # After a short batch the next one is empty and ends the epoch.
            yield [(index, crop_size) for index in batch]

    def __len__(self) -> int:
        """The number of batches in this epoch."""
        num_indices = len(self.sampler)
        num_batches = 0
        crop_sizes = self._crop_size_draws()
        while num_indices > 0:
            batch_size = self.batch_sizes[next(crop_sizes)]
            if batch_size > num_indices and self.drop_last:
                break
            num_batches += 1
            num_indices -= batch_size
        return num_batches

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(batch_sizes={self.batch_sizes}, '
                f'drop_last={self.drop_last}, fill_last={self.fill_last}, '
                f'seed={self.seed})')
