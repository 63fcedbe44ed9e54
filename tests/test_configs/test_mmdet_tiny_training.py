"""SSDLite-EdgeFormer on the generated tiny COCO set: the generator, the
tiny config, training and evaluation through the Runner, tools/train.py."""
import filecmp
import json
import os
import os.path as osp
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from helpers import REPO, run_image_demo, run_main, shorten_to_one_epoch

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.utils import build_runner
from edgeformer_mm.datasets.synthetic import SHAPE_CLASSES, make_tiny_coco

CONFIGS = osp.join(REPO, 'configs', 'mmdet')
TINY = osp.join(CONFIGS, 'ssdlite_edgeformer_xs_tiny-coco.py')


def load_split(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def relative_files(root):
    return sorted(
        osp.relpath(osp.join(folder, name), root)
        for folder, _, names in os.walk(root) for name in names)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """A generator run big enough to show border and overlapping boxes."""
    return make_tiny_coco(
        str(tmp_path_factory.mktemp('gen') / 'a'), 24, 6, image_size=64)


def test_tiny_coco_layout_and_determinism(generated, tmp_path):
    files = relative_files(generated)
    assert files == (
        ['annotations/instances_train.json', 'annotations/instances_val.json']
        + [f'train/{i:04d}.png' for i in range(24)] +
        [f'val/{i:04d}.png' for i in range(6)])
    again = make_tiny_coco(str(tmp_path / 'b'), 24, 6, image_size=64)
    _, mismatch, errors = filecmp.cmpfiles(generated, again, files,
                                           shallow=False)
    assert not mismatch and not errors
    other_seed = make_tiny_coco(str(tmp_path / 'c'), 24, 6, 64, seed=1)
    assert load_split(other_seed, 'train') != load_split(generated, 'train')


def test_tiny_coco_annotations(generated):
    train, val = load_split(generated, 'train'), load_split(generated, 'val')
    assert train['categories'] == val['categories'] == [
        dict(id=i + 1, name=name) for i, name in enumerate(SHAPE_CLASSES)
    ]
    assert [image['id'] for image in train['images']] == list(range(1, 25))
    assert {(image['height'], image['width'])
            for image in train['images']} == {(64, 64)}
    annotations = train['annotations']
    assert [a['id'] for a in annotations] == list(range(1,
                                                        len(annotations) + 1))
    # Several objects an image, every class.
    assert len(annotations) >= 2 * 24
    assert set(Counter(a['category_id'] for a in annotations)) == {1, 2, 3, 4}
    touching_border = 0
    for a in annotations:
        x, y, w, h = a['bbox']
        assert all(isinstance(v, int) for v in a['bbox'])
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= 64 and y + h <= 64
        assert 0 < a['area'] <= w * h and a['iscrowd'] == 0
        touching_border += x == 0 or y == 0 or x + w == 64 or y + h == 64
    assert 0 < touching_border < len(annotations) / 2
    assert any(
        boxes_intersect(a['bbox'], b['bbox']) for a in annotations
        for b in annotations
        if a['image_id'] == b['image_id'] and a['id'] < b['id'])


def boxes_intersect(a, b):
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3]
            and b[1] < a[1] + a[3])


def colour_extents(image):
    """``(box [x, y, w, h], pixel count)`` of each BGR colour that occurs
    more than once in the image."""
    colours, inverse, counts = np.unique(
        image.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(image.shape[:2])
    extents = []
    for index in np.flatnonzero(counts > 1):
        ys, xs = np.nonzero(inverse == index)
        x, y = int(xs.min()), int(ys.min())
        extents.append(([x, y, int(xs.max()) + 1 - x,
                         int(ys.max()) + 1 - y], len(xs)))
    return extents


def test_tiny_coco_boxes_are_tight_on_the_drawn_pixels(generated):
    """Every pixel of a shape has the shape's one colour, so each object's
    box and area are those of one colour of its image: what is drawn,
    clipped by the border, less what later shapes hide."""
    train = load_split(generated, 'train')
    for image_info in train['images']:
        image = cv2.imread(
            osp.join(generated, 'train', image_info['file_name']))
        extents = colour_extents(image)
        for a in train['annotations']:
            if a['image_id'] == image_info['id']:
                assert (a['bbox'], a['area']) in extents, a


def test_tiny_coco_loads_as_a_coco_dataset(generated):
    from mmdet.datasets import CocoDataset
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = CocoDataset(
            data_root=generated,
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
            metainfo=dict(classes=SHAPE_CLASSES),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True)
            ])
    assert dataset.metainfo['classes'] == SHAPE_CLASSES
    assert len(dataset) == 6
    sample = dataset[2]
    assert sample['img'].shape == (64, 64, 3)
    val = load_split(generated, 'val')
    expected = [a for a in val['annotations'] if a['image_id'] == 3]
    np.testing.assert_array_equal(
        sample['gt_bboxes'].tensor.numpy(),
        [[x, y, x + w, y + h] for x, y, w, h in
         (a['bbox'] for a in expected)])
    np.testing.assert_array_equal(sample['gt_bboxes_labels'],
                                  [a['category_id'] - 1 for a in expected])


def test_tiny_config_model():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(TINY)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert tuple(loader.dataset.metainfo.classes) == SHAPE_CLASSES
        assert loader.dataset.data_root == 'data/tiny_coco/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(cfg.model).eval()
    assert detector.backbone.arch == EdgeFormer.arch_settings['xs']
    # From the tiny shapes classifier that tools/train.py writes.
    assert detector.backbone.init_cfg == dict(
        type='Pretrained',
        prefix='backbone.',
        checkpoint='work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_12.pth')
    assert detector.bbox_head.num_classes == 4
    with torch.no_grad():
        feats = detector.extract_feat(torch.rand(1, 3, 128, 128))
    # Official prior centres: (x + 0.5) / side of each level's map.
    generator = detector.bbox_head.prior_generator
    for feat, stride in zip(feats, generator.strides):
        assert feat.shape[3] * stride[0] == 128
    assert generator.base_sizes[0] == pytest.approx(12.8)


def tiny_cfg(root, work_dir):
    """The tiny config on a small generated set: 2 iterations an epoch."""
    cfg = Config.fromfile(TINY)
    # From scratch: the official initialisation, no classifier needed.
    del cfg.model.backbone.init_cfg
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
    cfg.val_evaluator.ann_file = osp.join(root, 'annotations',
                                          'instances_val.json')
    cfg.test_evaluator = cfg.val_evaluator
    shorten_to_one_epoch(cfg, work_dir)
    return cfg


@pytest.mark.slow
def test_two_iterations_train_and_val_with_coco_metric(tmp_path):
    root = make_tiny_coco(
        str(tmp_path / 'tiny_coco'), num_train=8, num_val=4, image_size=96)
    runner = build_runner(tiny_cfg(root, tmp_path / 'work'))
    runner.train()
    assert runner.iter == 2
    metrics = runner.val()
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    assert osp.isfile(checkpoint)

    # The image demo draws the (untrained) detector's boxes.
    stdout = run_image_demo(
        osp.join(root, 'val', '0000.png'), TINY, checkpoint,
        tmp_path / 'boxes.png', '--score-thr', '0')
    assert 'boxes with score >= 0.0' in stdout


@pytest.mark.slow
def test_keep_ratio_resize_trains_and_predicts_on_non_square_batches(
        tmp_path):
    root = make_tiny_coco(
        str(tmp_path / 'tiny_coco'),
        num_train=4,
        num_val=2,
        image_size=(72, 100))
    cfg = tiny_cfg(root, tmp_path / 'work')
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        for transform in loader.dataset.pipeline:
            if transform.type == 'Resize':
                transform.update(scale=(128, 96), keep_ratio=True)
    cfg.model.data_preprocessor.pad_size_divisor = 32
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == 1

    batch = next(iter(runner.val_dataloader))
    model = runner.model.eval()
    # 72x100 scaled by 1.28 to fit 128x96: 92x128, padded to 96x128.
    assert model.data_preprocessor(batch)['inputs'].shape == (2, 3, 96, 128)
    with torch.no_grad():
        results = model.test_step(batch)
    for result in results:
        assert result.metainfo['img_shape'] == (92, 128)
        bboxes = result.pred_instances.bboxes
        assert bboxes.shape[1] == 4 and len(bboxes) > 0
        # Rescaled back to the original image.
        assert bboxes[:, 2].max() <= 100 and bboxes[:, 3].max() <= 72


def test_train_tool_says_where_to_put_coco(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        run_main('tools/train.py',
                 osp.join(CONFIGS, 'ssdlite_edgeformer_s_coco.py'))
    assert ("train_dataloader: data_root 'data/coco/' does not exist. "
            'Put COCO 2017: annotations/, train2017/, val2017/ there'
            ) in str(error.value)
