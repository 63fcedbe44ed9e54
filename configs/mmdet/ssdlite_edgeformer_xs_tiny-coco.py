# SSDLite-EdgeFormer-XS on the generated tiny shapes detection set (4
# classes, 128x128 images; tools/misc/make_tiny_datasets.py): the official
# recipe scaled down to a few CPU minutes; results and how the settings were
# chosen: README.md in this folder. As the official detector starts from an
# ImageNet backbone, this one starts from the tiny shapes classifier:
#   python tools/train.py \
#       configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py
# writes work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_12.pth.
_base_ = ['./ssdlite_edgeformer_s_coco.py', '../_base_/tiny_runtime.py']

input_size = 128
# The official priors, recomputed for 128 (the base computes them for 320):
# official centres are (x + 0.5) / side of each level's feature map, so a
# level's stride is input_size / side; at 128x128 the six maps are 8, 4, 2,
# 1, 1, 1 (stride-16 and -32 backbone levels, three stride-2 extra levels,
# the global one). Another input_size needs its own sides.
strides = [input_size / side for side in (8, 4, 2, 1, 1, 1)]
prior_sizes = [input_size * (0.1 + 0.95 * i / 6) for i in range(7)]
classes = ('circle', 'square', 'triangle', 'cross')

model = dict(
    # XS has the same layer4 / layer5 widths as S (128 / 160), so the neck
    # and head are unchanged.
    backbone=dict(
        arch='xs',
        init_cfg=dict(
            checkpoint='work_dirs/edgeformer-xs_1xb32_tiny-shapes/'
            'epoch_12.pth')),
    bbox_head=dict(
        num_classes=len(classes),
        anchor_generator=dict(
            strides=strides,
            min_sizes=prior_sizes[:-1],
            max_sizes=prior_sizes[1:])))

# The base pipelines at input_size, without the min-IoU random crop and the
# photometric distortion: the generated objects already vary in position,
# size and colour, and in a few hundred iterations these augmentations only
# slow learning down (README.md).
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
data_root = 'data/tiny_coco/'
# Batch 8: twice the updates of batch 16 in about the same time (README.md).
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# Short schedule of the same shape (AdamW, linear warm-up, per-epoch cosine),
# 25 iterations an epoch at 200 training images.
max_epochs = 20
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    _base_.tiny_warmup,
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=3e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(base_batch_size=8)
custom_hooks = [
    _base_.tiny_ema_hook,
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW')
]
default_hooks = dict(
    logger=_base_.tiny_logger_hook,
    checkpoint=dict(_base_.tiny_checkpoint_hook, interval=max_epochs))
randomness = _base_.tiny_randomness
