"""edgeformer_runtime: run edgeformer_mm's deployment bundles without
PyTorch or OpenMMLab, with numpy, OpenCV and ncnn or ONNX Runtime."""
from .backends import BackendNotInstalledError
from .bundle import Bundle, BundleError, file_digest
from .predictor import Predictor
from .preprocess import ImageError, load_image, preprocess

__version__ = '0.1.0'

__all__ = [
    'BackendNotInstalledError', 'Bundle', 'BundleError', 'ImageError',
    'Predictor', 'file_digest', 'load_image', 'preprocess'
]
