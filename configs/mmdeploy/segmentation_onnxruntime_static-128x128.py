# DeepLabV3 segmentation, ONNX Runtime, fixed 128x128 input: the size of
# the tiny segmentor (configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py).
_base_ = ['./segmentation_onnxruntime_static-512x512.py']

onnx_config = dict(input_shape=[128, 128])  # [width, height]
