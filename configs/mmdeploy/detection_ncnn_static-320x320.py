# SSDLite detection, ncnn (fp32 weights), fixed 320x320 input, for ARM.
# The graph ends with the final detections (blob `input` -> `detections`,
# rows [label, score, x1, y1, x2, y2] from ncnn's DetectionOutput layer,
# after mmdet's own box decoding in the graph); see
# edgeformer_mm/deployment/ncnn.py.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[320, 320])  # [width, height]
codebase_config = dict(type='mmdet', task='ObjectDetection')
backend_config = dict(type='ncnn', precision='FP32', use_vulkan=False)
