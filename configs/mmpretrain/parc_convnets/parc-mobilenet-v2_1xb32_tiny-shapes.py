# ParC-MobileNetV2 from scratch on the tiny shapes set: everything but the
# backbone type as in its plain counterpart, mobilenet-v2_1xb32_tiny-shapes.py.
_base_ = './mobilenet-v2_1xb32_tiny-shapes.py'

model = dict(backbone=dict(type='ParCMobileNetV2'))
