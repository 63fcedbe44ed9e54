"""The generated tiny data sets: layout, determinism, mmpretrain loading."""
import filecmp
import os

from edgeformer_mm.utils.tiny_datasets import SHAPE_CLASSES, make_tiny_shapes


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
