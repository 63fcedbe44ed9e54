"""DeepLabV3-EdgeFormer on the generated tiny VOC set: the tiny config,
training and evaluation through the Runner, tools/train.py."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from helpers import REPO, run_image_demo, run_main, shorten_to_one_epoch

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.utils import build_runner
from edgeformer_mm.datasets.synthetic import (SEG_CLASSES, SEG_PALETTE,
                                               make_tiny_voc)

CONFIGS = osp.join(REPO, 'configs', 'mmseg')
TINY = osp.join(CONFIGS, 'deeplabv3_edgeformer_xs_tiny-voc.py')
CLASSIFIER = 'work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_12.pth'


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope():
    """mmseg's default scope for this module's tests, and only for them."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_tiny_config_model_starts_from_the_tiny_classifier(
        tmp_path, monkeypatch):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(TINY)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        dataset = loader.dataset
        assert dataset.data_root == 'data/tiny_voc'
        assert tuple(dataset.metainfo.classes) == SEG_CLASSES
        assert [tuple(c) for c in dataset.metainfo.palette] == \
            list(SEG_PALETTE)
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', prefix='backbone.', checkpoint=CLASSIFIER)
    model = MODELS.build(cfg.model)
    assert model.backbone.arch == EdgeFormer.arch_settings['xs']
    assert model.backbone.output_stride == 16
    assert model.decode_head.num_classes == len(SEG_CLASSES)

    # A classifier checkpoint at that (relative) path initialises the
    # backbone; its expansion conv, unused here, is skipped.
    torch.manual_seed(0)
    classifier = EdgeFormer('xs')
    monkeypatch.chdir(tmp_path)
    (tmp_path / osp.dirname(CLASSIFIER)).mkdir(parents=True)
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in classifier.state_dict().items()
        }), CLASSIFIER)
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, classifier.state_dict()[key])


def tiny_cfg(root, work_dir):
    """The tiny config on a small generated set, 2 images a batch."""
    cfg = Config.fromfile(TINY)
    # From scratch: the official initialisation, no classifier needed.
    del cfg.model.backbone.init_cfg
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
    shorten_to_one_epoch(cfg, work_dir)
    return cfg


@pytest.mark.slow
def test_two_iterations_train_and_val_with_iou_metric(tmp_path):
    root = make_tiny_voc(
        str(tmp_path / 'tiny_voc'), num_train=4, num_val=2, image_size=96)
    runner = build_runner(tiny_cfg(root, tmp_path / 'work'))
    # Not distributed: the Runner has reverted SyncBN to BN.
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    runner.train()
    assert runner.iter == 2
    metrics = runner.val()
    assert 0 <= metrics['mIoU'] <= 100
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    assert osp.isfile(checkpoint)

    # The image demo overlays the (untrained) segmentor's mask.
    stdout = run_image_demo(
        osp.join(root, 'JPEGImages', 'val_0000.jpg'), TINY, checkpoint,
        tmp_path / 'mask.png')
    assert 'predicted classes (share of the pixels)' in stdout


@pytest.mark.slow
def test_keep_ratio_resize_predicts_at_the_original_size(tmp_path):
    root = make_tiny_voc(
        str(tmp_path / 'tiny_voc'),
        num_train=2,
        num_val=2,
        image_size=(72, 100))
    cfg = tiny_cfg(root, tmp_path / 'work')
    resizes = [t for t in cfg.val_dataloader.dataset.pipeline
               if t.type == 'Resize']
    assert len(resizes) == 1
    resizes[0].update(scale=(128, 96), keep_ratio=True)
    runner = build_runner(cfg)
    # One iteration, then a validation with this pipeline.
    runner.train()
    assert runner.iter == 1

    batch = next(iter(runner.val_dataloader))
    model = runner.model.eval()
    # 72x100 scaled by 1.28 to fit 128x96: 92x128, not padded in testing.
    assert model.data_preprocessor(batch)['inputs'].shape == (2, 3, 92, 128)
    with torch.no_grad():
        results = model.test_step(batch)
    for result in results:
        assert result.metainfo['img_shape'] == (92, 128)
        assert result.metainfo['ori_shape'] == (72, 100)
        assert result.seg_logits.data.shape == (len(SEG_CLASSES), 72, 100)
        assert result.pred_sem_seg.data.shape == (1, 72, 100)
        assert result.gt_sem_seg.data.shape == (1, 72, 100)


def test_train_tool_says_where_to_put_voc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        run_main(
            'tools/train.py',
            osp.join(CONFIGS, 'deeplabv3_edgeformer_s_voc12aug-512x512.py'))
    assert "data_root 'data/VOCdevkit/VOC2012' does not exist" \
        in str(error.value)
