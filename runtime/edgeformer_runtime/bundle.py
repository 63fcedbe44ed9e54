"""The bundle: one directory per model and backend with everything a device
needs, described by ``bundle.json``.

``bundle.json`` holds the task, the backend and its files (each with its
SHA-256 and size), the network's input and outputs, the exact test-time
preprocessing, the task's postprocessing parameters and the versions of the
packages that wrote it. :meth:`Bundle.load` refuses a bundle whose manifest
or files are missing, changed or for another task or backend, naming what
is wrong. The format is described in docs/deployment.md of edgeformer_mm.
"""
import hashlib
import json
import os.path as osp
from typing import Dict, Optional

FORMAT = 'edgeformer_mm.bundle'
FORMAT_VERSION = 1
MANIFEST = 'bundle.json'
TASKS = ('classification', 'detection', 'segmentation')
# The model files each backend needs, by role.
BACKEND_FILES = {
    'ncnn': {
        'param': 'end2end.param',
        'bin': 'end2end.bin'
    },
    'onnxruntime': {
        'model': 'end2end.onnx'
    },
    'mnn': {
        'model': 'end2end.mnn'
    },
    'litert': {
        'model': 'end2end.tflite'
    },
    'executorch': {
        'model': 'end2end.pte'
    },
}
# The network's outputs per task and backend (see docs/deployment.md).
OUTPUTS = {
    ('classification', 'ncnn'): ['output'],
    ('classification', 'onnxruntime'): ['output'],
    ('segmentation', 'ncnn'): ['output'],
    ('segmentation', 'onnxruntime'): ['output'],
    ('detection', 'ncnn'): ['detections'],
    ('detection', 'onnxruntime'): ['dets', 'labels'],
}
# MNN converts mmdeploy's ONNX graphs: the same outputs. LiteRT and
# ExecuTorch run graphs exported by torch.export, which end in the decoded
# boxes and class scores of all priors for detection (NMS on the host).
for _task in TASKS:
    OUTPUTS[_task, 'mnn'] = OUTPUTS[_task, 'onnxruntime']
    for _backend in ('litert', 'executorch'):
        OUTPUTS[_task, _backend] = (['boxes', 'scores']
                                    if _task == 'detection' else ['output'])


class BundleError(ValueError):
    """A bundle that cannot be used: its message names the file and why."""


def file_digest(path: str) -> Dict[str, object]:
    """The SHA-256 (hex) and the size in bytes of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return {'sha256': digest.hexdigest(), 'bytes': osp.getsize(path)}


class Bundle:
    """A verified bundle directory.

    Use :meth:`load`; the attributes mirror ``bundle.json``.

    Attributes:
        root (str): The directory.
        manifest (dict): ``bundle.json`` as read.
    """

    def __init__(self, root: str, manifest: dict):
        self.root = root
        self.manifest = manifest

    @classmethod
    def load(cls,
             root: str,
             task: Optional[str] = None,
             backend: Optional[str] = None) -> 'Bundle':
        """Read and verify the bundle in ``root``.

        Args:
            root (str): The bundle directory.
            task (str, optional): Refuse a bundle for another task.
            backend (str, optional): Refuse a bundle for another backend.

        Raises:
            BundleError: The manifest is missing, unreadable, of another
                format or version, inconsistent, for another task or
                backend; or a model file is missing or changed.
        """
        manifest_path = osp.join(root, MANIFEST)
        if not osp.isdir(root):
            raise BundleError(f'{root} is not a directory')
        if not osp.isfile(manifest_path):
            raise BundleError(f'{manifest_path} is missing: not a bundle '
                              '(tools/deploy.py writes one)')
        try:
            with open(manifest_path, encoding='utf-8') as f:
                manifest = json.load(f)
        except (OSError, ValueError) as error:
            raise BundleError(f'cannot read {manifest_path}: {error}')
        if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
            raise BundleError(f'{manifest_path} is not an {FORMAT} manifest')
        if manifest.get('format_version') != FORMAT_VERSION:
            raise BundleError(
                f'{manifest_path} has format version '
                f'{manifest.get("format_version")}; this runtime reads '
                f'version {FORMAT_VERSION}')
        bundle = cls(root, manifest)
        bundle._check_contents(manifest_path)
        if task is not None and bundle.task != task:
            raise BundleError(f'{root} is a {bundle.task} bundle, not '
                              f'{task}')
        if backend is not None and bundle.backend != backend:
            raise BundleError(f'{root} is for {bundle.backend}, not '
                              f'{backend}')
        bundle._check_files()
        return bundle

    def _check_contents(self, manifest_path: str):
        missing = [
            key for key in ('task', 'backend', 'input', 'outputs', 'files',
                            'preprocess', 'postprocess')
            if key not in self.manifest
        ]
        if missing:
            raise BundleError(f'{manifest_path} lacks {", ".join(missing)}')
        if self.task not in TASKS:
            raise BundleError(f'{manifest_path}: unknown task {self.task!r}')
        if self.backend not in BACKEND_FILES:
            raise BundleError(
                f'{manifest_path}: unknown backend {self.backend!r}')
        expected = OUTPUTS[self.task, self.backend]
        if self.outputs != expected:
            raise BundleError(
                f'{manifest_path}: a {self.task} {self.backend} network has '
                f'the outputs {expected}, not {self.outputs}')
        for name in BACKEND_FILES[self.backend].values():
            if name not in self.manifest['files']:
                raise BundleError(f'{manifest_path} does not list {name}')

    def _check_files(self):
        for name, recorded in self.manifest['files'].items():
            path = self.path(name)
            if not osp.isfile(path):
                raise BundleError(f'{path} is missing')
            if file_digest(path) != recorded:
                raise BundleError(f'{path} differs from the file the bundle '
                                  'was written with (checksum mismatch)')

    def path(self, name: str) -> str:
        """The path of a file of the bundle."""
        return osp.join(self.root, name)

    def model_file(self, role: str) -> str:
        """The path of the backend's file for ``role`` ('param', 'bin' or
        'model')."""
        return self.path(BACKEND_FILES[self.backend][role])

    @property
    def task(self) -> str:
        return self.manifest['task']

    @property
    def backend(self) -> str:
        return self.manifest['backend']

    @property
    def precision(self) -> str:
        return self.manifest.get('precision', 'fp32')

    @property
    def input_name(self) -> str:
        return self.manifest['input']['name']

    @property
    def input_shape(self) -> list:
        """[1, 3, H, W]; H and W are None for a dynamic network."""
        return self.manifest['input']['shape']

    @property
    def outputs(self) -> list:
        return self.manifest['outputs']

    @property
    def preprocess(self) -> list:
        return self.manifest['preprocess']

    @property
    def postprocess(self) -> dict:
        return self.manifest['postprocess']

    @property
    def class_names(self) -> Optional[list]:
        return self.postprocess.get('class_names')
