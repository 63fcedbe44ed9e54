# Image classification, ONNX Runtime, int8 by its static QDQ quantization
# (the GCC's circulant products included), fixed 256x256 input:
# classification_onnxruntime_static-256x256.py, then quantized after
# calibration (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./classification_onnxruntime_static-256x256.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
