# SSDLite detection, ExecuTorch with XNNPACK (the .pte of torch.export, lowered
# to XNNPACK; an extra: pip install edgeformer_mm[executorch]), fp32, fixed
# 320x320 input: EdgeFormer in deploy mode for this size, the graph ends with
# the decoded boxes and class scores of all priors (NMS on the host). The ONNX
# Runtime config is the base for mmdeploy's task processor (input creation).
_base_ = ['./detection_onnxruntime_static-320x320.py']

backend_config = dict(type='executorch')
