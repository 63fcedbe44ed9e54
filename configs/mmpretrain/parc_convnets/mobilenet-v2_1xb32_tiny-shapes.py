# MobileNetV2 from scratch on the generated tiny shapes set (4 classes of
# 64x64 images; tools/misc/make_tiny_datasets.py), a few CPU minutes: the
# plain counterpart of parc-mobilenet-v2_1xb32_tiny-shapes.py, for a side by
# side check that the ParC model trains like its host (results: README.md).
# The ConvNeXt recipe scaled down: AdamW with weight decay 0.05, warm-up then
# cosine, label smoothing; at this size without Mixup, CutMix, RandAugment,
# random erasing and EMA (the tiny set is learned in a few hundred
# iterations).
_base_ = [
    './mobilenet-v2_32xb128-convnext-recipe_in1k.py',
    '../../_base_/datasets/tiny_shapes.py', '../../_base_/tiny_runtime.py'
]

data_preprocessor = dict(num_classes=4)
model = dict(
    head=dict(num_classes=4, topk=(1, )), train_cfg=dict(augments=None))

# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=72,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        _delete_=True, pipeline=train_pipeline, **_base_.tiny_shapes_train))
val_dataloader = dict(
    batch_size=50,
    num_workers=2,
    dataset=dict(
        _delete_=True, pipeline=test_pipeline, **_base_.tiny_shapes_val))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 12
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    _base_.tiny_warmup,
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-5,
         by_epoch=True, begin=0, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = []
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=_base_.tiny_logger_hook,
    checkpoint=dict(_base_.tiny_checkpoint_hook, interval=max_epochs))
randomness = _base_.tiny_randomness
