"""The two backends a bundle can be for: ncnn and ONNX Runtime, each
imported only when used, so that a device needs just one of them."""
from typing import Dict, List, Optional

import numpy as np

from .bundle import Bundle, BundleError


class BackendNotInstalledError(ImportError):
    """The backend of a bundle is not installed."""


def _import(name: str):
    try:
        return __import__(name)
    except ImportError as error:
        raise BackendNotInstalledError(
            f'the bundle is for {name}, which is not installed: pip install '
            f'edgeformer-runtime[{name}]') from error


class NcnnBackend:
    """An ncnn network.

    Args:
        bundle (Bundle): An ncnn bundle.
        num_threads (int, optional): ncnn's thread count (default: ncnn's).
        fp16 (bool, optional): Store and compute in fp16 where the CPU
            supports it (ncnn's default, on ARM and on x86 with F16C); False
            forces fp32 throughout. None: fp16 only for an fp16 bundle.
    """

    def __init__(self,
                 bundle: Bundle,
                 num_threads: Optional[int] = None,
                 fp16: Optional[bool] = None):
        ncnn = _import('ncnn')
        self.net = ncnn.Net()
        if num_threads:
            self.net.opt.num_threads = num_threads
        if fp16 is None:
            fp16 = bundle.precision == 'fp16'
        if not fp16:
            for option in [
                    'use_fp16_storage', 'use_fp16_packed',
                    'use_fp16_arithmetic'
            ]:
                setattr(self.net.opt, option, False)
        for role, load in [('param', self.net.load_param),
                           ('bin', self.net.load_model)]:
            if load(bundle.model_file(role)) != 0:
                raise BundleError(
                    f'ncnn cannot load {bundle.model_file(role)}')
        self._mat = ncnn.Mat
        self.input_name = bundle.input_name
        self.output_names = bundle.outputs

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for one (3, H, W) float32 input."""
        outputs = {}
        with self.net.create_extractor() as extractor:
            extractor.input(self.input_name, self._mat(image))
            for name in self.output_names:
                status, mat = extractor.extract(name)
                if status != 0:
                    raise RuntimeError(f'ncnn cannot compute {name}')
                # DetectionOutput gives an empty blob for no detection (and
                # numpy cannot view an empty ncnn.Mat).
                outputs[name] = (
                    np.zeros(0, np.float32) if mat.empty() else np.array(mat))
        return outputs


class OnnxRuntimeBackend:
    """An ONNX Runtime session on the CPU.

    Args:
        bundle (Bundle): An ONNX Runtime bundle.
        num_threads (int, optional): Intra-op threads (default: ONNX
            Runtime's).
    """

    def __init__(self, bundle: Bundle, num_threads: Optional[int] = None):
        onnxruntime = _import('onnxruntime')
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        path = bundle.model_file('model')
        try:
            self.session = onnxruntime.InferenceSession(
                path, options, providers=['CPUExecutionProvider'])
        except Exception as error:  # ONNX Runtime raises its own types
            raise BundleError(f'ONNX Runtime cannot load {path}: {error}')
        self.input_name = bundle.input_name
        self.output_names: List[str] = bundle.outputs

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for one (3, H, W) float32 input."""
        values = self.session.run(self.output_names,
                                  {self.input_name: image[None]})
        return dict(zip(self.output_names, values))
