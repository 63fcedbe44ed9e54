# Image classification, LiteRT (the .tflite of litert-torch's torch.export
# route; an opt-in extra: bash tools/setup_litert.sh), fp32, fixed 64x64 input:
# EdgeFormer in deploy mode for this size, the graph ends with the class
# scores. The ONNX Runtime config is the base for mmdeploy's task processor
# (input creation).
_base_ = ['./classification_onnxruntime_static-64x64.py']

backend_config = dict(type='litert')
