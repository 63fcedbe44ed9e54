# mmdeploy's ONNX export settings (its own _base_/onnx_config.py, which the
# mmdeploy wheel does not ship). tools/deploy.py exports with PyTorch's
# TorchScript exporter (dynamo=False), which mmdeploy 1.3.1 needs.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True)
