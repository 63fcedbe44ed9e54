"""The checking loaders: a corrupt file fails naming itself, or is skipped
with a warning; a good one loads exactly as mmcv's and mmseg's loaders
load it."""
import logging
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmseg.datasets.transforms import LoadAnnotations
from torch.utils.data import DataLoader

from edgeformer_mm.datasets import (CorruptFileError, LoadImageFromFileChecked,
                                    LoadSegAnnotationsChecked)
from edgeformer_mm.datasets.transforms import check_complete

HEIGHT, WIDTH = 24, 32


def encode(extension, image):
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


def photo():
    """A smooth colour image, small enough for fast tests."""
    ys, xs = np.mgrid[:HEIGHT, :WIDTH]
    return np.stack([ys * 10, xs * 8, (ys + xs) * 4], -1).astype(np.uint8)


def label_map(height=HEIGHT, width=WIDTH):
    return (np.arange(height * width).reshape(height, width) % 5).astype(
        np.uint8)


def cut_at_half(data):
    return data[:len(data) // 2]


def write(path, data):
    path.write_bytes(data)
    return str(path)


JPEG = encode('.jpg', photo())
PNG = encode('.png', photo())
GARBAGE = np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes()
LOADER_ARGUMENTS = [
    dict(),
    dict(to_float32=True),
    dict(color_type='grayscale'),
    dict(color_type='unchanged'),
    dict(imdecode_backend='pillow'),
]
# (file name, its contents, the start of what is wrong).
CORRUPT_IMAGES = {
    'empty': ('empty.jpg', b'', 'empty file'),
    'jpeg cut short': ('cut.jpg', cut_at_half(JPEG), 'JPEG cut short'),
    'png cut short': ('cut.png', cut_at_half(PNG), 'PNG cut short'),
    'garbage': ('garbage.png', GARBAGE, 'cannot be decoded'),
}


@pytest.fixture
def logged_warnings(caplog):
    """The warnings logged through mmengine's current logger."""
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
@pytest.mark.parametrize('kwargs', LOADER_ARGUMENTS)
def test_good_images_load_as_mmcv_loads_them(tmp_path, extension, kwargs):
    path = write(tmp_path / f'good{extension}', encode(extension, photo()))
    ours = LoadImageFromFileChecked(**kwargs)(dict(img_path=path))
    theirs = LoadImageFromFile(**kwargs)(dict(img_path=path))
    assert ours.keys() == theirs.keys()
    assert ours['img'].dtype == theirs['img'].dtype
    np.testing.assert_array_equal(ours['img'], theirs['img'])
    assert ours['img_shape'] == theirs['img_shape']
    assert ours['ori_shape'] == theirs['ori_shape']


@pytest.mark.parametrize(
    'name, contents, reason',
    CORRUPT_IMAGES.values(),
    ids=CORRUPT_IMAGES.keys())
def test_corrupt_images_raise_naming_the_file(tmp_path, name, contents,
                                              reason):
    path = write(tmp_path / name, contents)
    with pytest.raises(CorruptFileError) as error:
        LoadImageFromFileChecked()(dict(img_path=path))
    assert str(error.value).startswith(f'{path}: {reason}')


def test_skip_returns_none_and_warns_naming_the_file(tmp_path,
                                                     logged_warnings):
    name, contents, reason = CORRUPT_IMAGES['jpeg cut short']
    path = write(tmp_path / name, contents)
    load = LoadImageFromFileChecked(on_corrupt='skip')
    assert load(dict(img_path=path)) is None
    [record] = logged_warnings.records
    assert record.levelno == logging.WARNING
    assert f'{path}: {reason}' in record.getMessage()


def test_jpeg_data_after_the_end_marker_is_allowed(tmp_path):
    # Phones append a video (motion photos) or their own data to JPEGs.
    path = write(tmp_path / 'motion.jpg', JPEG + b'\x00\x00\x00\x18ftypmp42')
    image = LoadImageFromFileChecked()(dict(img_path=path))['img']
    np.testing.assert_array_equal(image, cv2.imread(path))


def test_a_thumbnail_does_not_complete_a_jpeg_cut_short():
    # An EXIF thumbnail is a whole JPEG, end marker included, in a header
    # segment before the image's own data.
    thumbnail = encode('.jpg', photo()[::4, ::4])
    payload = b'Exif\x00\x00' + thumbnail
    segment = b'\xff\xe1' + (len(payload) + 2).to_bytes(2, 'big') + payload
    with_thumbnail = JPEG[:2] + segment + JPEG[2:]
    check_complete('photo.jpg', with_thumbnail)
    cut = with_thumbnail[:len(segment) + len(JPEG) // 2]
    with pytest.raises(CorruptFileError, match='JPEG cut short'):
        check_complete('photo.jpg', cut)


def test_refuses_what_on_corrupt_replaces():
    with pytest.raises(ValueError, match='on_corrupt must be one of'):
        LoadImageFromFileChecked(on_corrupt='ignore')
    with pytest.raises(ValueError, match='ignore_empty'):
        LoadImageFromFileChecked(ignore_empty=True)


def seg_results(tmp_path, label):
    """The results of loading an image of HEIGHT x WIDTH, and the label map
    file ``label`` (bytes)."""
    return dict(
        img_path=str(tmp_path / 'image.jpg'),
        ori_shape=(HEIGHT, WIDTH),
        seg_map_path=write(tmp_path / 'label.png', label),
        reduce_zero_label=False,
        seg_fields=[])


@pytest.mark.parametrize('reduce_zero_label', [False, True])
def test_good_label_maps_load_as_mmseg_loads_them(tmp_path, reduce_zero_label):
    results = seg_results(tmp_path, encode('.png', label_map()))
    results['reduce_zero_label'] = reduce_zero_label
    ours = LoadSegAnnotationsChecked()(dict(results, seg_fields=[]))
    theirs = LoadAnnotations()(dict(results, seg_fields=[]))
    assert ours['seg_fields'] == theirs['seg_fields'] == ['gt_seg_map']
    assert ours['gt_seg_map'].dtype == theirs['gt_seg_map'].dtype
    np.testing.assert_array_equal(ours['gt_seg_map'], theirs['gt_seg_map'])


@pytest.mark.parametrize(
    'label, reason', [
        (cut_at_half(encode('.png', label_map())), 'PNG cut short'),
        (b'not a png', 'cannot be decoded'),
        (encode('.png', label_map(HEIGHT, WIDTH - 1)),
         f"label map size {HEIGHT}x{WIDTH - 1} differs from its image's "
         f'{HEIGHT}x{WIDTH}'),
    ],
    ids=['cut short', 'garbage', 'other size'])
def test_corrupt_label_maps_raise_naming_the_file(tmp_path, label, reason):
    results = seg_results(tmp_path, label)
    with pytest.raises(CorruptFileError) as error:
        LoadSegAnnotationsChecked()(results)
    assert str(error.value).startswith(f'{results["seg_map_path"]}: {reason}')


def test_label_map_skip_returns_none(tmp_path, logged_warnings):
    label = encode('.png', label_map(HEIGHT + 1, WIDTH))
    results = seg_results(tmp_path, label)
    assert LoadSegAnnotationsChecked(on_corrupt='skip')(results) is None
    assert results['seg_map_path'] in logged_warnings.text


def test_errors_of_a_good_label_map_are_not_blamed_on_it(tmp_path):
    # mmseg reads reduce_zero_label from the data set's results.
    results = seg_results(tmp_path, encode('.png', label_map()))
    del results['reduce_zero_label']
    with pytest.raises(KeyError, match='reduce_zero_label'):
        LoadSegAnnotationsChecked(on_corrupt='skip')(results)


@pytest.fixture
def image_folder(tmp_path):
    """An ImageNet-style folder of 6 JPEGs, the fourth cut short; its root,
    the good files and the corrupt one."""
    paths = []
    for index in range(6):
        folder = tmp_path / 'train' / f'class{index % 2}'
        folder.mkdir(parents=True, exist_ok=True)
        data = encode('.jpg', np.roll(photo(), index, axis=1))
        if index == 3:
            data = cut_at_half(data)
        paths.append(write(folder / f'{index}.jpg', data))
    corrupt = paths.pop(3)
    return str(tmp_path / 'train'), paths, corrupt


def training_loader(root, on_corrupt):
    """mmpretrain's CustomDataset in training mode, loaded by two
    workers."""
    from mmpretrain.datasets import CustomDataset
    dataset = CustomDataset(
        data_root=root,
        pipeline=[
            dict(type='LoadImageFromFileChecked', on_corrupt=on_corrupt)
        ])
    return DataLoader(
        dataset, batch_size=2, num_workers=2, collate_fn=pseudo_collate)


def test_a_training_loader_fails_naming_the_corrupt_file(image_folder):
    root, _, corrupt = image_folder
    batches = iter(training_loader(root, 'error'))
    # torch re-raises the worker's error, message and type.
    with pytest.raises(CorruptFileError, match=re.escape(corrupt)):
        list(batches)
    # Now: left to the garbage collector (the error's traceback holds the
    # iterator), torch waits 5 s for each worker.
    batches._shutdown_workers()


def test_a_training_loader_skips_the_corrupt_file(image_folder):
    root, good, _ = image_folder
    loaded = [
        osp.normpath(path) for batch in training_loader(root, 'skip')
        for path in batch['img_path']
    ]
    # The corrupt file's place goes to another sample, drawn at random.
    assert len(loaded) == len(good) + 1
    assert set(loaded) == set(good)
