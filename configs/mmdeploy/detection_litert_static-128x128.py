# SSDLite detection, LiteRT (the .tflite of litert-torch's torch.export route;
# an opt-in extra: bash tools/setup_litert.sh), fp32, fixed 128x128 input:
# EdgeFormer in deploy mode for this size, the graph ends with the decoded
# boxes and class scores of all priors (NMS on the host). The ONNX Runtime
# config is the base for mmdeploy's task processor (input creation).
_base_ = ['./detection_onnxruntime_static-128x128.py']

backend_config = dict(type='litert')
