"""The generated tiny data sets: layout, determinism, mmpretrain and mmseg
loading. The tiny COCO set has its tests in
test_configs/test_mmdet_tiny_training.py."""
import filecmp
import json
import os

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from PIL import Image

from edgeformer_mm.datasets.synthetic import (SEG_CLASSES, SEG_PALETTE,
                                               SHAPE_CLASSES, make_tiny_coco,
                                               make_tiny_shapes, make_tiny_voc)


def test_tiny_shapes_layout_and_determinism(tmp_path):
    first = make_tiny_shapes(str(tmp_path / 'a'), 3, 2, image_size=40)
    second = make_tiny_shapes(str(tmp_path / 'b'), 3, 2, image_size=40)
    files = sorted(
        os.path.relpath(os.path.join(d, f), first)
        for d, _, names in os.walk(first) for f in names)
    assert len(files) == 4 * (3 + 2) + 3  # images, classes.txt, 2 ann files
    match, mismatch, errors = filecmp.cmpfiles(first, second, files,
                                               shallow=False)
    assert not mismatch and not errors
    other_seed = make_tiny_shapes(str(tmp_path / 'c'), 3, 2, 40, seed=1)
    assert not filecmp.cmp(
        os.path.join(first, 'train/circle/circle_0000.png'),
        os.path.join(other_seed, 'train/circle/circle_0000.png'),
        shallow=False)


def test_tiny_shapes_loads_as_an_imagenet_format_dataset(tmp_path):
    from mmpretrain.datasets import CustomDataset
    root = make_tiny_shapes(str(tmp_path / 'shapes'), 3, 2, image_size=32)
    dataset = CustomDataset(
        data_root=root,
        ann_file='meta/val.txt',
        data_prefix='val',
        classes=os.path.join(root, 'classes.txt'),
        pipeline=[dict(type='LoadImageFromFile')])
    assert dataset.CLASSES == SHAPE_CLASSES
    assert len(dataset) == 8
    sample = dataset[5]
    assert sample['img'].shape == (32, 32, 3)
    assert SHAPE_CLASSES[sample['gt_label']] in sample['img_path']


@pytest.fixture(scope='module', params=[64, (48, 80)], ids=['64', '48x80'])
def tiny_voc(request, tmp_path_factory):
    """The VOC set, 12 train and 4 val images, and the COCO set of the same
    arguments, whose scenes it shares; ``(voc root, coco root, (h, w))``."""
    folder = tmp_path_factory.mktemp('voc')
    size = request.param
    voc = make_tiny_voc(str(folder / 'voc'), 12, 4, image_size=size)
    coco = make_tiny_coco(str(folder / 'coco'), 12, 4, image_size=size)
    return voc, coco, (size, size) if isinstance(size, int) else size


def voc_names(root, split):
    path = os.path.join(root, 'ImageSets/Segmentation', f'{split}.txt')
    with open(path) as f:
        return f.read().split()


def read_seg_map(root, name):
    return cv2.imread(
        os.path.join(root, 'SegmentationClass', f'{name}.png'),
        cv2.IMREAD_UNCHANGED)


def test_tiny_voc_layout_and_determinism(tiny_voc, tmp_path):
    root, _, (height, width) = tiny_voc
    names = [f'train_{i:04d}' for i in range(12)]
    assert voc_names(root, 'train') == names
    assert voc_names(root, 'val') == [f'val_{i:04d}' for i in range(4)]
    names += voc_names(root, 'val')
    files = sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, filenames in os.walk(root) for f in filenames)
    assert files == sorted(
        ['ImageSets/Segmentation/train.txt', 'ImageSets/Segmentation/val.txt'
         ] + [f'JPEGImages/{n}.jpg' for n in names] +
        [f'SegmentationClass/{n}.png' for n in names])
    label_path = os.path.join(root, 'SegmentationClass/val_0000.png')
    with Image.open(label_path) as label:
        assert (label.format, label.mode) == ('PNG', 'L')
        assert label.size == (width, height)
    with Image.open(os.path.join(root, 'JPEGImages/val_0000.jpg')) as image:
        assert (image.format, image.mode) == ('JPEG', 'RGB')
        assert image.size == (width, height)
    again = make_tiny_voc(str(tmp_path / 'b'), 12, 4, (height, width))
    _, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert not mismatch and not errors
    other_seed = make_tiny_voc(str(tmp_path / 'c'), 12, 4, (height, width),
                               seed=1)
    for file in ('JPEGImages/train_0000.jpg',
                 'SegmentationClass/train_0000.png'):
        assert not filecmp.cmp(
            os.path.join(root, file),
            os.path.join(other_seed, file),
            shallow=False)


def test_tiny_voc_labels_and_ignored_border_bands(tiny_voc):
    """Labels 0 to 4, all present, and 255 only in strips 2 to 6 pixels wide
    along the edges of about half the label maps."""
    root, _, _ = tiny_voc
    seen, banded = set(), 0
    for name in voc_names(root, 'train') + voc_names(root, 'val'):
        seg_map = read_seg_map(root, name)
        assert seg_map.dtype == np.uint8 and seg_map.ndim == 2
        seen.update(np.unique(seg_map).tolist())
        ignored = seg_map == 255
        assert not ignored[6:-6, 6:-6].any()
        # Whole rows and columns, each band from an edge in, 2 to 6 wide.
        rows, cols = ignored.all(1), ignored.all(0)
        np.testing.assert_array_equal(ignored, rows[:, None] | cols)
        for line in rows, cols:
            first, last = int(line.argmin()), int(line[::-1].argmin())
            assert line.sum() == first + last
            assert {first, last} <= {0, 2, 3, 4, 5, 6}
        banded += ignored.any()
    assert seen <= {0, 1, 2, 3, 4, 255}
    assert {0, 1, 2, 3, 4, 255} <= seen
    assert 0 < banded < 16


def test_tiny_voc_labels_follow_the_drawn_shapes(tiny_voc):
    """The images are the COCO set's scenes: close to its lossless PNGs, and
    in those, the pixels of one colour that a class covers (or 255 hides)
    are one object of that class, with its COCO box and area."""
    root, coco, _ = tiny_voc
    for split in ('train', 'val'):
        with open(os.path.join(coco, 'annotations',
                               f'instances_{split}.json')) as f:
            annotations = json.load(f)
        for image_info in annotations['images']:
            name = f'{split}_{image_info["id"] - 1:04d}'
            scene = cv2.imread(
                os.path.join(coco, split, image_info['file_name']))
            image = cv2.imread(os.path.join(root, 'JPEGImages', f'{name}.jpg'))
            assert np.abs(image.astype(int) - scene).mean() < 5
            seg_map = read_seg_map(root, name)
            found = []
            for label in range(1, len(SEG_CLASSES)):
                for colour in np.unique(scene[seg_map == label], axis=0):
                    ys, xs = np.nonzero(
                        np.isin(seg_map, (label, 255))
                        & (scene == colour).all(-1))
                    x, y = int(xs.min()), int(ys.min())
                    found.append((label, [
                        x, y, int(xs.max()) + 1 - x,
                        int(ys.max()) + 1 - y
                    ], len(xs)))
            expected = [(a['category_id'], a['bbox'], a['area'])
                        for a in annotations['annotations']
                        if a['image_id'] == image_info['id']]
            assert sorted(found) == sorted(expected), name


def test_tiny_voc_loads_as_a_pascal_voc_dataset(tiny_voc):
    """mmseg's PascalVOCDataset only takes VOC class names, or a subset:
    the tiny set needs a subclass whose METAINFO holds its classes."""
    from mmseg.datasets import PascalVOCDataset

    class TinyVOCDataset(PascalVOCDataset):
        METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)

    root, _, (height, width) = tiny_voc
    kwargs = dict(
        data_root=root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        metainfo=dict(classes=SEG_CLASSES, palette=SEG_PALETTE),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')])
    with DefaultScope.overwrite_default_scope('mmseg'):
        with pytest.raises(ValueError, match='not a subset'):
            PascalVOCDataset(**kwargs)
        dataset = TinyVOCDataset(**kwargs)
    assert dataset.metainfo['classes'] == SEG_CLASSES
    assert dataset.metainfo['palette'] == SEG_PALETTE
    assert dataset.metainfo['label_map'] is None
    assert len(dataset) == 4
    for index, name in enumerate(voc_names(root, 'val')):
        sample = dataset[index]
        assert sample['img'].shape == (height, width, 3)
        np.testing.assert_array_equal(
            sample['img'],
            cv2.imread(os.path.join(root, 'JPEGImages', f'{name}.jpg')))
        np.testing.assert_array_equal(sample['gt_seg_map'],
                                      read_seg_map(root, name))
