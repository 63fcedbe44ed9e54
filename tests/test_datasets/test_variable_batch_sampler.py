"""The multi-scale variable batch sampler, its dataset wrapper and crop."""
import collections

import cv2
import numpy as np
import pytest
from mmengine.dataset import BaseDataset, DefaultSampler
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import edgeformer_mm.datasets.variable_batch_sampler as vbs_module
from edgeformer_mm.datasets import (VariableBatchSampler, VariableCropDataset,
                                    VariableRandomResizedCrop,
                                    multi_scale_crop_sizes)

OFFICIAL_SIZES = (160, 192, 256, 288, 320)
# Small sizes for fast tests: 9 images at 32, 4 at 48 (base) and 64.
SMALL = dict(batch_size=4, crop_sizes=(32, 48, 64), base_crop_size=48)
SMALL_BATCHES = {32: 9, 48: 4, 64: 4}


def make_sampler(num_samples=100, shuffle=True, sampler_seed=0, **kwargs):
    kwargs = {**SMALL, 'batch_size_divisor': 1, **kwargs}
    sampler = DefaultSampler(
        list(range(num_samples)), shuffle=shuffle, seed=sampler_seed)
    return VariableBatchSampler(sampler, **kwargs)


def crop_size_of(batch):
    sizes = {crop_size for _, crop_size in batch}
    assert len(sizes) == 1, f'a batch of several sizes: {sizes}'
    return sizes.pop()


def sizes_of(batches):
    return [crop_size_of(batch) for batch in batches]


def indices_of(batches):
    return [index for batch in batches for index, _ in batch]


def test_multi_scale_crop_sizes():
    # linspace 160..320 in 5 is 160, 200, 240, 280, 320; with the base 256,
    # rounded to multiples of 32.
    assert multi_scale_crop_sizes() == OFFICIAL_SIZES
    # The base size joins the sizes; 144 rounds up to 160 (nearest).
    assert multi_scale_crop_sizes(128, 256, 3, 224) == (128, 192, 224, 256)
    assert multi_scale_crop_sizes(144, 144, 1, 144, 32) == (160, )
    with pytest.raises(ValueError, match='max_size'):
        multi_scale_crop_sizes(320, 160)
    with pytest.raises(ValueError, match='divisor'):
        multi_scale_crop_sizes(divisor=0)


@pytest.mark.parametrize('world_size, batch_sizes', [
    (1, (327, 227, 128, 128, 128)),
    (4, (328, 228, 128, 128, 128)),
    (8, (328, 224, 128, 128, 128)),
])
def test_official_batch_sizes(monkeypatch, world_size, batch_sizes):
    # 128 * 256**2 / 160**2 = 327.68 -> 327, 192: 227.56 -> 227, rounded
    # to the nearest multiple of the world size; larger crops keep 128.
    monkeypatch.setattr(vbs_module, 'get_world_size', lambda: world_size)
    sampler = VariableBatchSampler(
        DefaultSampler(list(range(10)), seed=0), batch_size=128)
    assert sampler.crop_sizes == OFFICIAL_SIZES
    assert sampler.batch_sizes == dict(zip(OFFICIAL_SIZES, batch_sizes))
    # An explicit divisor wins over the world size.
    sampler = VariableBatchSampler(
        DefaultSampler(list(range(10)), seed=0),
        batch_size=128,
        batch_size_divisor=8)
    assert sampler.batch_sizes[192] == 224


def test_small_batch_sizes():
    assert make_sampler().batch_sizes == SMALL_BATCHES
    # The order of crop_sizes does not matter.
    sampler = make_sampler(crop_sizes=(64, 32, 48))
    assert sampler.crop_sizes == (32, 48, 64)
    assert sampler.batch_sizes == SMALL_BATCHES


@pytest.mark.parametrize('num_samples', [1, 9, 100, 1001])
def test_every_index_once_in_batches_of_one_size(num_samples):
    sampler = make_sampler(num_samples)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches[:-1]:
        assert len(batch) == SMALL_BATCHES[crop_size_of(batch)]
    last = batches[-1]
    assert 0 < len(last) <= SMALL_BATCHES[crop_size_of(last)]
    indices = indices_of(batches)
    assert sorted(indices) == list(range(num_samples))


def test_official_sizes_all_appear():
    sampler = VariableBatchSampler(
        DefaultSampler(list(range(20000)), seed=0),
        batch_size=128,
        batch_size_divisor=8)
    batches = list(sampler)
    counts = collections.Counter(sizes_of(batches))
    assert set(counts) == set(OFFICIAL_SIZES)
    # Drawn uniformly: about a fifth each (of ~107 batches).
    assert all(10 <= n <= 35 for n in counts.values()), counts
    for batch in batches[:-1]:
        assert len(batch) == sampler.batch_sizes[crop_size_of(batch)]


def test_deterministic_per_seed_and_epoch():
    first = list(make_sampler(1000))
    assert list(make_sampler(1000)) == first
    sampler = make_sampler(1000)
    sampler.set_epoch(1)
    assert sampler.sampler.epoch == 1
    second = list(sampler)
    assert second != first
    sizes = sizes_of(first)
    assert sizes_of(second)[:len(sizes)] != sizes
    # mmengine sets the epoch on the wrapped sampler only.
    sampler.sampler.set_epoch(0)
    assert sampler.epoch == 0
    assert list(sampler) == first
    # Another seed draws other sizes, with the indices in the same order.
    other = list(make_sampler(1000, seed=1))
    assert sizes_of(other) != sizes
    assert indices_of(other) == indices_of(first)


def test_seed_comes_from_wrapped_sampler():
    assert make_sampler(sampler_seed=7).seed == 7
    assert make_sampler(sampler_seed=7, seed=3).seed == 3
    # The sizes depend on the seed only, not on the order of the indices.
    by_sampler_seed = make_sampler(sampler_seed=7)
    by_own_seed = make_sampler(sampler_seed=8, seed=7)
    assert list(by_sampler_seed) != list(by_own_seed)
    assert sizes_of(by_sampler_seed) == sizes_of(by_own_seed)
    # Without a seed anywhere one is drawn (and synchronised in DDP).
    sampler = VariableBatchSampler(range(10), **SMALL)
    assert isinstance(sampler.seed, int) and sampler.seed >= 0


def test_len_follows_epoch():
    sampler = make_sampler(1000)
    lengths = set()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        assert len(sampler) == len(list(sampler))
        lengths.add(len(sampler))
    # The number of batches depends on the sizes drawn.
    assert len(lengths) > 1


@pytest.mark.parametrize('num_samples', [5, 100, 1001])
def test_drop_last(num_samples):
    sampler = make_sampler(num_samples, drop_last=True)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            assert len(batch) == SMALL_BATCHES[crop_size_of(batch)]
        indices = indices_of(batches)
        assert len(set(indices)) == len(indices)
        kept = make_sampler(num_samples)
        kept.set_epoch(epoch)
        assert len(kept) - len(sampler) in (0, 1)


@pytest.mark.parametrize('num_samples', [5, 100, 1001])
def test_fill_last_as_official(num_samples):
    sampler = make_sampler(num_samples, fill_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == SMALL_BATCHES[crop_size_of(batch)]
    indices = indices_of(batches)
    assert set(indices) == set(range(num_samples))
    # The last batch is completed with the epoch's first indices.
    order = list(sampler.sampler)
    extra = len(indices) - num_samples
    assert indices[num_samples:] == (order * extra)[:extra]


def test_ddp_sharding(monkeypatch):
    monkeypatch.setattr(vbs_module, 'get_world_size', lambda: 2)
    rank_batches = []
    for rank in range(2):
        monkeypatch.setattr(
            'mmengine.dataset.sampler.get_dist_info',
            lambda rank=rank: (rank, 2))
        sampler = DefaultSampler(list(range(301)), seed=5)
        assert (sampler.rank, sampler.world_size) == (rank, 2)
        batch_sampler = VariableBatchSampler(sampler, **SMALL)
        # Rounded to multiples of the world size: 9 -> 10.
        assert batch_sampler.batch_sizes == {32: 10, 48: 4, 64: 4}
        batches = list(batch_sampler)
        assert len(batches) == len(batch_sampler)
        rank_batches.append(batches)
    batches_0, batches_1 = rank_batches
    # In step: the same number of batches, each of the same size.
    assert len(batches_0) == len(batches_1)
    for batch_0, batch_1 in zip(batches_0, batches_1):
        assert crop_size_of(batch_0) == crop_size_of(batch_1)
        assert len(batch_0) == len(batch_1)
    indices = [indices_of(batches) for batches in rank_batches]
    # 301 shared out as 151 + 151: one index comes twice (padding).
    assert len(indices[0]) == len(indices[1]) == 151
    assert set(indices[0]) | set(indices[1]) == set(range(301))
    assert len(set(indices[0]) & set(indices[1])) == 1


@pytest.mark.parametrize('kwargs, message', [
    (dict(batch_size=0), 'batch_size'),
    (dict(crop_sizes=()), 'crop_sizes'),
    (dict(crop_sizes=32), 'crop_sizes'),
    (dict(crop_sizes=(32, 0)), 'crop size'),
    (dict(crop_sizes=(32, 32.5)), 'crop size'),
    (dict(crop_sizes=(32, 48, 32)), 'duplicates'),
    (dict(base_crop_size=-48), 'base_crop_size'),
    (dict(drop_last=True, fill_last=True), 'exclude'),
    (dict(fill_last=1), 'fill_last'),
    (dict(batch_size_divisor=0), 'batch_size_divisor'),
    (dict(seed=-1), 'seed'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_sampler(**kwargs)


class ListDataset(BaseDataset):
    """Five samples ``dict(value=i)``, without files."""

    METAINFO = dict(classes=('a', 'b'))

    def load_data_list(self):
        return [dict(value=i) for i in range(5)]


def test_variable_crop_dataset_keys():
    dataset = VariableCropDataset(
        dict(type=ListDataset, pipeline=[lambda results: results]))
    assert len(dataset) == 5
    assert dataset.metainfo == dict(classes=('a', 'b'))
    assert dataset.get_data_info(3) == dict(value=3, sample_idx=3)
    assert dataset[2] == dict(value=2, sample_idx=2)
    assert dataset[(2, 160)] == dict(value=2, sample_idx=2, crop_size=160)
    # The data info of the wrapped dataset is not changed.
    assert 'crop_size' not in dataset.get_data_info(2)
    with pytest.raises(ValueError, match='index, crop_size'):
        dataset[(2, 160, 1)]
    with pytest.raises(TypeError, match='BaseDataset'):
        VariableCropDataset([dict(value=0)])


def test_variable_crop_dataset_lazy_init():
    dataset = VariableCropDataset(
        ListDataset(lazy_init=True, pipeline=[]), lazy_init=True)
    assert not dataset.dataset._fully_initialized
    dataset.full_init()
    assert dataset.dataset._fully_initialized


def test_variable_crop_dataset_refetches_with_the_crop_size():

    def drop_even(results):
        return None if results['value'] % 2 == 0 else results

    dataset = VariableCropDataset(
        ListDataset(pipeline=[drop_even], max_refetch=100))
    np.random.seed(0)
    for _ in range(10):
        data = dataset[(0, 96)]
        assert data['value'] in (1, 3) and data['crop_size'] == 96

    never = VariableCropDataset(
        ListDataset(pipeline=[lambda results: None], max_refetch=3))
    with pytest.raises(RuntimeError,
                       match=r'sample\(s\) \[0, \d, \d, \d\] at crop size 96 '
                       r'\(3 replacement\(s\) tried'):
        never[(0, 96)]
    test_mode = VariableCropDataset(
        ListDataset(pipeline=[drop_even], test_mode=True))
    with pytest.raises(RuntimeError,
                       match=r'sample\(s\) \[0\] .*test mode: no other'):
        test_mode[(0, 96)]


def test_variable_random_resized_crop():
    image = np.random.default_rng(0).integers(
        0, 256, (100, 60, 3), dtype=np.uint8)
    crop = VariableRandomResizedCrop(scale=(24, 32))
    assert crop(dict(img=image))['img'].shape == (24, 32, 3)
    results = crop(dict(img=image, crop_size=40))
    assert results['img'].shape == results['img_shape'] == (40, 40, 3)
    results = crop(dict(img=image, crop_size=np.int64(20)))
    assert results['img'].shape == (20, 20, 3)
    # The batch's size does not stick to the transform.
    assert crop.scale == (24, 32)
    assert crop(dict(img=image))['img'].shape == (24, 32, 3)
    with pytest.raises(ValueError, match='crop_size'):
        crop(dict(img=image, crop_size=(40, 40)))


@pytest.fixture
def image_folder(tmp_path):
    """Eleven images of various shapes in two class folders."""
    rng = np.random.default_rng(0)
    for i in range(11):
        folder = tmp_path / f'class_{i % 2}'
        folder.mkdir(exist_ok=True)
        height, width = rng.integers(40, 90, size=2)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'{i}.png'), image)
    return tmp_path


def test_runner_builds_a_multi_scale_dataloader(image_folder):
    dataloader_cfg = dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        batch_sampler=dict(
            type='VariableBatchSampler',
            crop_sizes=(32, 48, 64),
            base_crop_size=48),
        dataset=dict(
            type='VariableCropDataset',
            dataset=dict(
                type='CustomDataset',
                data_root=str(image_folder),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='VariableRandomResizedCrop', scale=48),
                    dict(type='PackInputs'),
                ])),
        collate_fn=dict(type='default_collate'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataloader = Runner.build_dataloader(dataloader_cfg, seed=0)
        batch_sampler = dataloader.batch_sampler
        assert isinstance(batch_sampler, VariableBatchSampler)
        assert batch_sampler.batch_sizes == SMALL_BATCHES
        seen_sizes = set()
        for epoch in range(4):
            # What mmengine's loops do before each epoch.
            batch_sampler.sampler.set_epoch(epoch)
            batches = list(dataloader)
            assert len(batches) == len(dataloader)
            labels = []
            for batch in batches:
                inputs = batch['inputs']
                batch_size, channels, height, width = inputs.shape
                assert channels == 3 and height == width
                assert batch_size <= SMALL_BATCHES[height]
                seen_sizes.add(height)
                labels += [s.gt_label.item() for s in batch['data_samples']]
            assert sorted(labels) == [0] * 6 + [1] * 5
    assert seen_sizes == {32, 48, 64}
