# Image classification, ncnn (fp32 weights), fixed 256x256 input, for ARM.
# tools/deploy.py switches EdgeFormer to deploy mode for this size and
# converts it with the PyPI pnnx converter; the graph ends with the class
# scores (blobs `input` -> `output`).
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[256, 256])  # [width, height]
codebase_config = dict(type='mmpretrain', task='Classification')
backend_config = dict(type='ncnn', precision='FP32', use_vulkan=False)
