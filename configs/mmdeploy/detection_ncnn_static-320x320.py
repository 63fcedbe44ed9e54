# SSDLite detection, ncnn (fp32 weights), fixed 320x320 input, for ARM.
# The graph ends with the head's raw maps (blobs `input` -> `cls_score0`..,
# `bbox_pred0`.., one per level); priors, box decoding and NMS run on the
# host (edgeformer_mm.deployment.NcnnRunner), because mmdeploy's
# DetectionOutput layer needs its source build.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[320, 320])  # [width, height]
codebase_config = dict(type='mmdet', task='ObjectDetection')
backend_config = dict(type='ncnn', precision='FP32', use_vulkan=False)
