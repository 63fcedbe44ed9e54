# Semantic segmentation, ncnn (fp32 weights), fixed 512x512 input, for ARM.
# The graph ends with the class logits at input size (blobs `input` ->
# `output`); the argmax runs on the host, since ncnn has no ArgMax layer.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[512, 512])  # [width, height]
codebase_config = dict(
    type='mmseg', task='Segmentation', with_argmax=False)
backend_config = dict(type='ncnn', precision='FP32', use_vulkan=False)
