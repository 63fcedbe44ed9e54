"""Accuracy of a predictor on a model config's test set, with the config's
own evaluator: a bundle through the torch-free runtime (what a device
computes, its preprocessing included) or PyTorch through the inference
APIs, so that the two, and fp32 and int8 bundles, are measured alike."""
from typing import Callable, Dict

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DATASETS, DefaultScope


def evaluate_predictions(model_cfg: Config,
                         predict: Callable[[str], dict]) -> Dict[str, float]:
    """The metrics of the config's ``test_evaluator`` over its
    ``test_dataloader``'s data set for the predictions of ``predict``.

    Args:
        model_cfg (Config): The model config (its data set and evaluator).
        predict (Callable): From an image file to a prediction in the
            runtime's format (``edgeformer_runtime.Predictor``, or
            :func:`.parity.reference_prediction` of a PyTorch model).

    Returns:
        dict: The metrics by name (e.g. ``accuracy/top1``,
        ``coco/bbox_mAP``, ``mIoU``).
    """
    with DefaultScope.overwrite_default_scope(model_cfg.get('default_scope')):
        dataset = DATASETS.build(model_cfg.test_dataloader.dataset)
        evaluator = Evaluator(model_cfg.test_evaluator)
        evaluator.dataset_meta = dataset.metainfo
        for index in range(len(dataset)):
            sample = dataset[index]['data_samples']
            prediction = predict(sample.img_path)
            _set_prediction(sample, prediction)
            evaluator.process([sample])
        return evaluator.evaluate(len(dataset))


def _set_prediction(sample, prediction: dict):
    """Put a runtime-format prediction into an OpenMMLab data sample."""
    task = prediction['task']
    if task == 'classification':
        sample.set_pred_score(torch.from_numpy(prediction['pred_scores']))
        sample.set_pred_label(prediction['pred_label'])
    elif task == 'detection':
        from mmengine.structures import InstanceData
        detections = prediction['detections']
        sample.pred_instances = InstanceData(
            bboxes=torch.tensor([d['bbox'] for d in detections],
                                dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor([d['score'] for d in detections]),
            labels=torch.tensor([d['label'] for d in detections],
                                dtype=torch.long))
    else:
        from mmengine.structures import PixelData
        sample.pred_sem_seg = PixelData(
            data=torch.from_numpy(prediction['label_map'].astype(np.int64))
            [None])
