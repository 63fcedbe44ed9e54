# Semantic segmentation, LiteRT (the .tflite of litert-torch's torch.export
# route; an opt-in extra: bash tools/setup_litert.sh), fp32, fixed 128x128
# input: EdgeFormer in deploy mode for this size, the graph ends with the class
# logits at input size. The ONNX Runtime config is the base for mmdeploy's task
# processor (input creation).
_base_ = ['./segmentation_onnxruntime_static-128x128.py']

backend_config = dict(type='litert')
