# Image classification, ExecuTorch with XNNPACK (the .pte of torch.export,
# lowered to XNNPACK; an extra: pip install edgeformer_mm[executorch]), fp32,
# fixed 64x64 input: EdgeFormer in deploy mode for this size, the graph ends
# with the class scores. The ONNX Runtime config is the base for mmdeploy's
# task processor (input creation).
_base_ = ['./classification_onnxruntime_static-64x64.py']

backend_config = dict(type='executorch')
