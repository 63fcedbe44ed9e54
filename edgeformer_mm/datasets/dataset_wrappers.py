"""Dataset wrappers."""
import logging
from typing import Any, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dataset.base_dataset import force_full_init
from mmengine.logging import print_log

from edgeformer_mm.registry import DATASETS, register


@register(DATASETS)
class VariableCropDataset:
    """Gives the wrapped dataset's pipeline the crop size of each sample.

    For multi-scale training with :class:`VariableBatchSampler`, which yields
    ``(index, crop_size)`` keys: the data info of ``index`` gets
    ``crop_size`` under the key ``'crop_size'`` before the wrapped dataset's
    pipeline runs, where :class:`VariableRandomResizedCrop` reads it. Plain
    int keys give the wrapped dataset's sample unchanged.

    As :class:`~mmengine.dataset.BaseDataset` does, a sample whose pipeline
    returns None (e.g. a broken image) is replaced by a random other one, up
    to the wrapped dataset's ``max_refetch`` times (not in test mode); it
    gets the same crop size, so its batch stays one size.

    Args:
        dataset (BaseDataset | dict): The dataset, or its config.
        lazy_init (bool): Whether to defer loading the annotations to
            :meth:`full_init`. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 lazy_init: bool = False) -> None:
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
        elif isinstance(dataset, BaseDataset):
            self.dataset = dataset
        else:
            raise TypeError('dataset must be a BaseDataset or its config, '
                            f'got {type(dataset)}')
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The meta information of the wrapped dataset (a copy)."""
        return self.dataset.metainfo

    def full_init(self) -> None:
        """Fully initialise the wrapped dataset."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self._fully_initialized = True

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The data info of a sample, without the crop size.

        Args:
            idx (int): The index of the sample.

        Returns:
            dict: The wrapped dataset's data info of ``idx``.
        """
        return self.dataset.get_data_info(idx)

    @force_full_init
    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Any:
        """A sample after the pipeline.

        Args:
            key (int | tuple[int, int]): An index, or an
                ``(index, crop_size)`` pair.

        Returns:
            Any: The output of the wrapped dataset's pipeline.
        """
        # Like BaseDataset, index a lazily initialised dataset anyway, and
        # say once that it is slower that way.
        if not self._fully_initialized:
            print_log(
                f'{type(self).__name__} was indexed before full_init(); '
                'initialising it now',
                logger='current',
                level=logging.WARNING)
            self.full_init()
        if not isinstance(key, tuple):
            return self.dataset[key]
        if len(key) != 2:
            raise ValueError('a tuple key must be (index, crop_size), got '
                             f'{key!r}')
        index, crop_size = key
        dataset = self.dataset
        tried = []
        while len(tried) <= dataset.max_refetch:
            tried.append(index)
            data_info = dataset.get_data_info(index)
            data_info['crop_size'] = crop_size
            sample = dataset.pipeline(data_info)
            if sample is not None:
                return sample
            if dataset.test_mode:
                # A test set must give every sample: no stand-ins.
                break
            index = np.random.randint(len(dataset))
        raise RuntimeError(
            f'The pipeline returned None for sample(s) {tried} at crop size '
            f'{crop_size}' + (' (test mode: no other sample is tried)'
                              if dataset.test_mode else
                              f' ({dataset.max_refetch} replacement(s) '
                              'tried; is an image unreadable?)'))
