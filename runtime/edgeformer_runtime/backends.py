"""The backends a bundle can be for: ncnn, ONNX Runtime, MNN, LiteRT and
ExecuTorch, each imported only when used, so that a device needs just one
of them."""
import contextlib
import importlib
import os
import sys
import tempfile
from typing import Dict, Iterator, List, Optional

import numpy as np

from .bundle import Bundle, BundleError


@contextlib.contextmanager
def captured_output() -> Iterator[dict]:
    """Capture what native code writes to stdout and stderr (file
    descriptors 1 and 2) into ``captured['text']``, where
    ``contextlib.redirect_stdout`` does not reach: MNN prints its progress
    and the CPU's features there, which would mix with the predictions
    ``edgeformer-run`` prints."""
    captured = {'text': ''}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode='w+b') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            log.seek(0)
            captured['text'] = log.read().decode(errors='replace')


class BackendNotInstalledError(ImportError):
    """The backend of a bundle is not installed."""


def _import(module: str, extra: Optional[str] = None):
    """Import a backend's module; ``extra`` is the runtime's extra that
    installs it (default: the module's name)."""
    extra = extra or module
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BackendNotInstalledError(
            f'the bundle is for {extra}, which is not installed: pip install '
            f'edgeformer-runtime[{extra}]') from error


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


# MNN's Interpreter::HintMode: 0 leaves out the Winograd convolutions.
WINOGRAD_MEMORY_LEVEL = 3


class MnnModule:
    """An MNN model on the CPU, in fp32 (``precision: high``; MNN's
    ``normal`` computes in fp16 or bf16 where the CPU supports it), with
    direct convolutions (not Winograd's, which are less exact).

    Only ``MNN`` is imported: ``MNN.tools``, the converter's wrapper, runs
    ``pip install`` and sends usage logs when imported.

    Args:
        path (str): The ``.mnn`` file.
        input_name (str): The network's input.
        output_names (list[str]): Its outputs, in the order returned.
        num_threads (int, optional): MNN's thread count (default: 1, as
            MNN's).
        dynamic (bool): Whether inputs of other sizes than the model was
            converted with are allowed (a dynamic graph).
    """

    def __init__(self,
                 path: str,
                 input_name: str,
                 output_names: List[str],
                 num_threads: Optional[int] = None,
                 dynamic: bool = False):
        with captured_output() as output:
            mnn = _import('MNN', 'mnn')
            runtime = mnn.nn.create_runtime_manager(({
                'backend':
                'CPU',
                'numThread':
                num_threads or 1,
                'precision':
                'high'
            }, ))
            # Direct convolutions: MNN's Winograd ones move SSDLite's boxes
            # by up to a pixel (measured at 320x320).
            runtime.set_hint(WINOGRAD_MEMORY_LEVEL, 0)
            self.module = mnn.nn.load_module_from_file(
                path, [input_name],
                output_names,
                runtime_manager=runtime,
                shape_mutable=dynamic)
        if self.module is None:
            raise BundleError(
                f'MNN cannot load {path}: {output["text"].strip()}')
        self._expr = mnn.expr

    def __call__(self, x: np.ndarray) -> List[np.ndarray]:
        """The outputs for a float32 (N, 3, H, W) input."""
        expr = self._expr
        x = np.ascontiguousarray(x, np.float32)
        outputs = self.module.forward([expr.const(x, x.shape, expr.NCHW)])
        # MNN may keep 4-D results in its packed NC4HW4 layout.
        return [np.array(expr.convert(y, expr.NCHW).read()) for y in outputs]


class MnnBackend:
    """An MNN model (see :class:`MnnModule`).

    Args:
        bundle (Bundle): An MNN bundle.
        num_threads (int, optional): MNN's thread count (default: 1).
    """

    def __init__(self, bundle: Bundle, num_threads: Optional[int] = None):
        self.output_names: List[str] = bundle.outputs
        self.module = MnnModule(
            bundle.model_file('model'),
            bundle.input_name,
            self.output_names,
            num_threads,
            dynamic=None in bundle.input_shape[2:])

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for one (3, H, W) float32 input."""
        return dict(zip(self.output_names, self.module(image[None])))


# The signature litert-torch gives a converted module: its input and outputs
# are named as the bundle's.
LITERT_SIGNATURE = 'serving_default'


class LiteRTModel:
    """A LiteRT (TensorFlow Lite) model on the CPU (XNNPACK), run through
    its ``serving_default`` signature: outputs by name, whatever order the
    interpreter lists its tensors in.

    Args:
        path (str): The ``.tflite`` file.
        num_threads (int, optional): The interpreter's thread count
            (default: LiteRT's).

    Attributes:
        input_names (list[str]), output_names (list[str]): The signature's.
    """

    def __init__(self, path: str, num_threads: Optional[int] = None):
        interpreter = _import('ai_edge_litert.interpreter', 'litert')
        try:
            model = interpreter.Interpreter(
                model_path=path, num_threads=num_threads)
            self.runner = model.get_signature_runner(LITERT_SIGNATURE)
            signature = model.get_signature_list()[LITERT_SIGNATURE]
        except (ValueError, RuntimeError, KeyError) as error:
            raise BundleError(f'LiteRT cannot load {path}: {error}')
        self.input_names: List[str] = signature['inputs']
        self.output_names: List[str] = signature['outputs']

    def __call__(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for a float32 (1, 3, H, W) input."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.runner(**{self.input_names[0]: x})


class LiteRTBackend:
    """A LiteRT model (see :class:`LiteRTModel`).

    Args:
        bundle (Bundle): A LiteRT bundle.
        num_threads (int, optional): The interpreter's thread count
            (default: LiteRT's).
    """

    def __init__(self, bundle: Bundle, num_threads: Optional[int] = None):
        path = bundle.model_file('model')
        self.model = LiteRTModel(path, num_threads)
        self.output_names: List[str] = bundle.outputs
        if (self.model.input_names != [bundle.input_name] or sorted(
                self.model.output_names) != sorted(self.output_names)):
            raise BundleError(
                f'{path} has the inputs {self.model.input_names} and outputs '
                f'{self.model.output_names}, the bundle {bundle.input_name} '
                f'and {self.output_names}')

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for one (3, H, W) float32 input."""
        values = self.model(image[None])
        return {name: values[name] for name in self.output_names}


class ExecuTorchProgram:
    """An ExecuTorch program (``.pte``) on its XNNPACK backend.

    ExecuTorch's Python runtime links libtorch: a device running a ``.pte``
    from Python needs PyTorch too (its C++ runtime does not).

    Args:
        path (str): The ``.pte`` file.
        num_threads (int, optional): The threads of ExecuTorch's thread
            pool, which XNNPACK runs on (default: ExecuTorch's, one per
            performance core). The pool is one for the whole process: the
            last program loaded sets it for all.
    """

    def __init__(self, path: str, num_threads: Optional[int] = None):
        runtime = _import('executorch.runtime', 'executorch')
        self._torch = _import('torch', 'executorch')
        if num_threads:
            # Safe only while nothing runs on the pool, as here.
            _import('executorch.extension.pybindings.portable_lib',
                    'executorch')._unsafe_reset_threadpool(num_threads)
        try:
            self.method = runtime.Runtime.get().load_program(path).load_method(
                'forward')
        except Exception as error:  # ExecuTorch raises its own types
            raise BundleError(f'ExecuTorch cannot load {path}: {error}')

    def __call__(self, x: np.ndarray) -> List[np.ndarray]:
        """The outputs for a float32 (1, 3, H, W) input, in order."""
        x = self._torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return [value.numpy() for value in self.method.execute([x])]


class ExecuTorchBackend:
    """An ExecuTorch program (see :class:`ExecuTorchProgram`).

    Args:
        bundle (Bundle): An ExecuTorch bundle.
        num_threads (int, optional): The threads of ExecuTorch's pool.
    """

    def __init__(self, bundle: Bundle, num_threads: Optional[int] = None):
        self.program = ExecuTorchProgram(
            bundle.model_file('model'), num_threads)
        self.output_names: List[str] = bundle.outputs

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Outputs by name for one (3, H, W) float32 input."""
        return dict(zip(self.output_names, self.program(image[None])))
