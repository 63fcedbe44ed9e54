# SSDLite end to end: boxes are decoded and NMS-ed inside the ONNX graph
# (standard NonMaxSuppression, no custom op). mmdeploy takes the score
# threshold, NMS IoU, per-level pre-NMS count and detections per image from
# the model config's test_cfg; the values here are its fall-backs.
_base_ = ['./onnx_config.py']

onnx_config = dict(output_names=['dets', 'labels'])
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.02,
        confidence_threshold=0.005,
        iou_threshold=0.45,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=200,
        background_label_id=-1))
