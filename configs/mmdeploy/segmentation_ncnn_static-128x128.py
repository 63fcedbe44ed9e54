# DeepLabV3 segmentation, ncnn (fp32 weights), fixed 128x128 input: the size of
# the tiny segmentor (configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py).
_base_ = ['./segmentation_ncnn_static-512x512.py']

onnx_config = dict(input_shape=[128, 128])  # [width, height]
