# SSDLite detection, MNN (fp32), fixed 320x320 input: the ONNX Runtime
# graph converted by MNN, decoding and NMS (NonMaxSuppression) included
# (outputs `dets`, `labels`).
_base_ = ['./detection_onnxruntime_static-320x320.py']

backend_config = dict(type='mnn', precision='FP32')
