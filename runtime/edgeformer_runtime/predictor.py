"""Predictions from a bundle: preprocessing, the backend, postprocessing."""
import os
from typing import Optional, Union

import numpy as np

from . import postprocess
from .backends import (ExecuTorchBackend, LiteRTBackend, MnnBackend,
                       NcnnBackend, OnnxRuntimeBackend)
from .bundle import Bundle
from .preprocess import ImageError, preprocess

# The backends other than ncnn (which also takes ``fp16``), by name.
BACKENDS = {
    'onnxruntime': OnnxRuntimeBackend,
    'mnn': MnnBackend,
    'litert': LiteRTBackend,
    'executorch': ExecuTorchBackend,
}


class Predictor:
    """Run a bundle on images, as ``inference_model`` (mmpretrain, mmseg)
    and ``inference_detector`` (mmdet) run the PyTorch model.

    Args:
        bundle (str | Bundle): The bundle directory, or a loaded bundle.
        num_threads (int, optional): The backend's thread count.
        fp16 (bool, optional): ncnn only: compute in fp16 where the CPU
            supports it (ncnn's default on ARM); False forces fp32. None
            follows the bundle's precision.

    A prediction is a dict with ``task`` and:

    - classification: ``pred_label``, ``pred_score``, ``top5`` (``labels``
      and ``scores``), ``pred_scores`` (all classes) and, where the bundle
      names its classes, ``pred_class``;
    - detection: ``detections``, a list of ``{"bbox": [x1, y1, x2, y2],
      "score", "label"}`` (and ``class``) in image pixels, best first;
    - segmentation: ``label_map``, the class of each pixel of the image
      (uint8 for up to 256 classes).
    """

    def __init__(self,
                 bundle: Union[str, Bundle],
                 num_threads: Optional[int] = None,
                 fp16: Optional[bool] = None):
        self.bundle = bundle if isinstance(bundle,
                                           Bundle) else Bundle.load(bundle)
        if self.bundle.backend == 'ncnn':
            self.backend = NcnnBackend(self.bundle, num_threads, fp16)
        else:
            self.backend = BACKENDS[self.bundle.backend](self.bundle,
                                                         num_threads)
        self._postprocess = postprocess.TASKS[self.bundle.task]

    @property
    def task(self) -> str:
        return self.bundle.task

    def __call__(self, image: Union[str, os.PathLike, np.ndarray]) -> dict:
        """Predict on an image file, or a uint8 (H, W, 3) BGR array."""
        state = preprocess(image, self.bundle.preprocess)
        _, _, height, width = self.bundle.input_shape
        if None not in (height, width) and state.input.shape[1:] != (height,
                                                                     width):
            raise ImageError(
                f'the preprocessed image is {state.input.shape[2]}x'
                f'{state.input.shape[1]}, but the network takes '
                f'{width}x{height}')
        outputs = self.backend(state.input)
        return self._postprocess(outputs, state, self.bundle.postprocess)
