# ParC-MobileNetV2 on ImageNet-1k with the ConvNeXt recipe (see
# mobilenet-v2_32xb128-convnext-recipe_in1k.py, its plain counterpart: only
# the backbone type differs).
_base_ = './mobilenet-v2_32xb128-convnext-recipe_in1k.py'

model = dict(backbone=dict(type='ParCMobileNetV2'))
