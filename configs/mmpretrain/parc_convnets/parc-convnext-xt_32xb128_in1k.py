# ParC-ConvNeXt-XT on ImageNet-1k with the ConvNeXt recipe (see
# convnext-xt_32xb128_in1k.py, its plain counterpart: only the backbone
# differs).
_base_ = './convnext-xt_32xb128_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ParCConvNeXt',
        arch='xtiny',
        drop_path_rate=0.1))
