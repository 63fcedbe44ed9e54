# SSDLite detection, ONNX Runtime, fixed 128x128 input: the size of the tiny
# detector (configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py).
_base_ = ['./detection_onnxruntime_static-320x320.py']

onnx_config = dict(input_shape=[128, 128])  # [width, height]
