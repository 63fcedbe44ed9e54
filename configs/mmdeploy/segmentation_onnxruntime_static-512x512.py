# Semantic segmentation, ONNX Runtime, fixed 512x512 input, EdgeFormer in
# deploy mode for that size; the graph ends with the class logits at input
# size (with_argmax=False), the label map is their argmax.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[512, 512])  # [width, height]
codebase_config = dict(
    type='mmseg', task='Segmentation', with_argmax=False)
backend_config = dict(type='onnxruntime')
