# Semantic segmentation, ExecuTorch with XNNPACK (the .pte of torch.export,
# lowered to XNNPACK; an extra: pip install edgeformer_mm[executorch]), fp32,
# fixed 512x512 input: EdgeFormer in deploy mode for this size, the graph ends
# with the class logits at input size. The ONNX Runtime config is the base for
# mmdeploy's task processor (input creation).
_base_ = ['./segmentation_onnxruntime_static-512x512.py']

backend_config = dict(type='executorch')
