# Semantic segmentation, MNN (fp32), fixed 512x512 input: the ONNX Runtime
# graph converted by MNN (class logits at input size; the label map is their
# argmax, in the runtime).
_base_ = ['./segmentation_onnxruntime_static-512x512.py']

backend_config = dict(type='mnn', precision='FP32')
