# Semantic segmentation, ONNX Runtime, any batch, height and width. The
# graph ends with the class logits at input size (with_argmax=False) so that
# tools/deploy.py can compare them; the label map is their argmax.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(
    dynamic_axes=dict(
        input=dict({
            0: 'batch',
            2: 'height',
            3: 'width'
        }),
        output=dict({
            0: 'batch',
            2: 'height',
            3: 'width'
        })))
codebase_config = dict(
    type='mmseg', task='Segmentation', with_argmax=False)
backend_config = dict(type='onnxruntime')
