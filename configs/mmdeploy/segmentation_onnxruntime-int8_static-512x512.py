# Semantic segmentation, ONNX Runtime, int8 by its static QDQ quantization
# (the GCC's circulant products included), fixed 512x512 input:
# segmentation_onnxruntime_static-512x512.py, then quantized after
# calibration (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./segmentation_onnxruntime_static-512x512.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
