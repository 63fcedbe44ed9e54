# EdgeFormer-XS from scratch on the generated tiny shapes set (4 classes of
# 64x64 images; tools/misc/make_tiny_datasets.py): the official recipe scaled
# down to a few CPU minutes. This is what `make demo` trains; results and
# how the settings were chosen: README.md in this folder.
_base_ = [
    './edgeformer-xs_8xb128_in1k.py', '../../_base_/datasets/tiny_shapes.py',
    '../../_base_/tiny_runtime.py'
]

data_preprocessor = dict(num_classes=4)
model = dict(head=dict(num_classes=4, topk=(1, )))

# The official pipelines at a quarter of the size (crop 64, test resize 72);
# crops keep at least half the image so that the shape stays in view.
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(
        type='VariableRandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=72, edge='short', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    batch_sampler=dict(crop_sizes=(48, 56, 64, 72, 80), base_crop_size=64),
    dataset=dict(
        dataset=dict(
            _delete_=True,
            pipeline=train_pipeline,
            **_base_.tiny_shapes_train)))
val_dataloader = dict(
    batch_size=50,
    num_workers=2,
    dataset=dict(
        _delete_=True, pipeline=test_pipeline, **_base_.tiny_shapes_val))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Short schedule: same shape (warm-up, cosine to lr / 10, AdamW on all
# parameters), about 31 iterations an epoch.
max_epochs = 12
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    _base_.tiny_warmup,
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-4,
         by_epoch=True, begin=0, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [_base_.tiny_ema_hook]
default_hooks = dict(
    logger=_base_.tiny_logger_hook,
    checkpoint=dict(_base_.tiny_checkpoint_hook, interval=max_epochs))
randomness = _base_.tiny_randomness
