"""ncnn models from the PyPI ``pnnx`` converter, and a runner for them.

mmdeploy's own ncnn converter (``mmdeploy_onnx2ncnn``) and its
DetectionOutput layer exist only in a source build. Here the network is
traced with TorchScript and converted by ``pnnx``; what ncnn cannot run
stays on the host:

- classification: the graph ends with the softmax scores (``output``);
- segmentation: it ends with the class logits resized to the input
  (``output``), the argmax is taken on the host (ncnn has no ArgMax layer);
- detection: it ends with the head's raw maps (``cls_score0``...,
  ``bbox_pred0``..., one per level); priors, box decoding and NMS run on the
  host through the model's own ``predict_by_feat``, so the detections are
  those of PyTorch for the same maps.

mmpretrain's attention layers (MobileViT, EdgeNeXt) are traced in a 4-D
form, as ncnn needs (:mod:`edgeformer_mm.deployment.attention`).

The input blob is ``input``. :class:`NcnnRunner` runs the files for any of
the three tasks, like mmdeploy's backend models.
"""
import os
import os.path as osp
import shutil
import subprocess
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import with_four_dimensional_attention

INPUT_NAME = 'input'
TASKS = ('Classification', 'ObjectDetection', 'Segmentation')


class ConverterNotFoundError(RuntimeError):
    """The pnnx converter or the ncnn runtime is not installed."""


def output_names(model: nn.Module, task: str) -> List[str]:
    """Names of the ncnn outputs of ``model`` for ``task``, in order."""
    if task == 'ObjectDetection':
        levels = len(model.bbox_head.cls_convs)
        return ([f'cls_score{i}' for i in range(levels)] +
                [f'bbox_pred{i}' for i in range(levels)])
    return ['output']


class ExportGraph(nn.Module):
    """The part of an mmpretrain, mmdet or mmseg model that is exported,
    traced for ncnn or exported to ONNX: the network up to the outputs of
    its task (see the module docstring); the rest runs on the host.

    Args:
        model (nn.Module): The model, in eval mode.
        task (str): 'Classification', 'ObjectDetection' or 'Segmentation'.
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, not {task!r}')
        self.model = model
        self.task = task

    def forward(self, x: Tensor):
        outputs = self.model(x, mode='tensor')
        if self.task == 'Classification':
            return outputs.softmax(dim=1)
        if self.task == 'Segmentation':
            # As the model's predict does before its argmax.
            return F.interpolate(
                outputs,
                size=x.shape[2:],
                mode='bilinear',
                align_corners=self.model.align_corners)
        cls_scores, bbox_preds = outputs
        return (*cls_scores, *bbox_preds)


def pnnx_executable() -> str:
    """The converter binary of the installed ``pnnx`` package (or a
    ``pnnx`` on PATH): found without the environment's bin directory on
    PATH."""
    try:
        import pnnx
        return pnnx.EXEC_PATH
    except ImportError:
        path = shutil.which('pnnx')
        if path is None:
            raise ConverterNotFoundError(
                'the pnnx converter is not installed (`pip install pnnx`, '
                'see requirements/deploy.txt)')
        return path


def convert_to_ncnn(model: nn.Module, task: str, input_size: Tuple[int,
                                                                   int],
                    out_prefix: str, fp16: bool = False) -> List[str]:
    """Convert ``model`` for a fixed input size to ``out_prefix.param`` and
    ``out_prefix.bin``.

    The files appear only once the conversion succeeded: a failed one leaves
    nothing that could be mistaken for a model.

    mmpretrain's attention layers are converted in their 4-D form (see
    :func:`with_four_dimensional_attention`); ``model`` is left as it is.

    Args:
        model (nn.Module): The model in eval mode (EdgeFormer already in
            deploy mode for ``input_size``, so no kernel resizing is traced).
        task (str): The mmdeploy task name.
        input_size (tuple[int, int]): (height, width) of the input.
        out_prefix (str): Path of the files without their extension.
        fp16 (bool): Store the weights in fp16 (pnnx's default); fp32 if
            False.

    Returns:
        list[str]: The .param and .bin paths.
    """
    pnnx = pnnx_executable()
    files = [out_prefix + '.param', out_prefix + '.bin']
    for path in files:  # never leave an earlier model beside a failed one
        if osp.exists(path):
            os.remove(path)
    out_dir = osp.dirname(osp.abspath(out_prefix))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix='.ncnn-') as tmp:
        example = torch.zeros(1, 3, *input_size)
        with torch.no_grad():
            graph = ExportGraph(with_four_dimensional_attention(model), task)
            # No trace check (it runs the model again, tripling the time):
            # tools/deploy.py and the tests compare the converted model with
            # PyTorch on real inputs.
            traced = torch.jit.trace(
                graph.eval(), example, check_trace=False)
        traced.save(osp.join(tmp, 'model.pt'))
        shape = ','.join(map(str, example.shape))
        result = subprocess.run(
            [pnnx, 'model.pt', f'inputshape=[{shape}]', f'fp16={int(fp16)}'],
            cwd=tmp,
            capture_output=True,
            text=True)
        param = osp.join(tmp, 'model.ncnn.param')
        if result.returncode != 0 or not osp.exists(param):
            raise RuntimeError('pnnx failed to convert the model:\n' +
                               (result.stdout + result.stderr)[-3000:])
        rename_blobs(param, output_names(model, task))
        # The weights first: a .param file only appears beside its .bin.
        for suffix, path in [('.bin', files[1]), ('.param', files[0])]:
            os.replace(osp.join(tmp, 'model.ncnn' + suffix), path)
    return files


def rename_blobs(param_file: str, outputs: Sequence[str]):
    """Give pnnx's blobs ``in0`` and ``out0``, ``out1``... the names the
    runner expects (``input`` and ``outputs``)."""
    names = {'in0': INPUT_NAME}
    names.update({f'out{i}': name for i, name in enumerate(outputs)})
    with open(param_file) as f:
        magic, counts, *layers = f.read().splitlines()
    renamed, blobs_seen = [], set()
    for line in layers:
        kind, name, n_in, n_out, *rest = line.split()
        n_blobs = int(n_in) + int(n_out)
        blobs = [names.get(blob, blob) for blob in rest[:n_blobs]]
        blobs_seen.update(blobs)
        if kind == 'Input':
            name = names.get(name, name)
        renamed.append(' '.join([kind, name, n_in, n_out, *blobs,
                                 *rest[n_blobs:]]))
    if not set(names.values()) <= blobs_seen or f'out{len(outputs)}' in (
            blobs_seen):
        raise RuntimeError(f'{param_file} does not have exactly the blobs '
                           f'in0 and out0..out{len(outputs) - 1}')
    with open(param_file, 'w') as f:
        f.write('\n'.join([magic, counts, *renamed]) + '\n')


class NcnnRunner:
    """Run converted ncnn files for classification, detection or
    segmentation and return predictions as the PyTorch model does.

    Args:
        model (nn.Module): A model built from the config the files were
            converted from; only its data preprocessor and, for detection,
            its head's priors, box coder and test_cfg are used (not its
            weights).
        task (str): 'Classification', 'ObjectDetection' or 'Segmentation'.
        param_file (str): The .param file.
        bin_file (str): The .bin file.
        num_threads (int, optional): ncnn's thread count (default: ncnn's).
        fp16 (bool): Let ncnn store and compute intermediate results in
            fp16 where the CPU supports it (ncnn's default, also on x86 CPUs
            with F16C, where it costs about 3e-5 relative on the scores);
            fp32 throughout if False.
    """

    def __init__(self,
                 model: nn.Module,
                 task: str,
                 param_file: str,
                 bin_file: str,
                 num_threads: int = None,
                 fp16: bool = False):
        try:
            import ncnn
        except ImportError as error:
            raise ConverterNotFoundError(
                'the ncnn runtime is not installed (`pip install ncnn`, see '
                'requirements/deploy.txt)') from error
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, not {task!r}')
        self.model = model.eval()
        self.task = task
        self.output_names = output_names(model, task)
        self.net = ncnn.Net()
        if num_threads:
            self.net.opt.num_threads = num_threads
        for option in ['use_fp16_storage', 'use_fp16_packed',
                       'use_fp16_arithmetic']:
            setattr(self.net.opt, option, fp16)
        for path, load in [(param_file, self.net.load_param),
                           (bin_file, self.net.load_model)]:
            if load(path) != 0:
                raise RuntimeError(f'ncnn cannot load {path}')
        self._ncnn = ncnn

    def __call__(self, inputs: Tensor) -> Dict[str, Tensor]:
        """Run the network on a batch of preprocessed images (N, 3, H, W);
        the outputs by name, each batched."""
        outputs = {name: [] for name in self.output_names}
        for image in inputs.detach().float().cpu().numpy():
            with self.net.create_extractor() as extractor:
                extractor.input(INPUT_NAME,
                                self._ncnn.Mat(np.ascontiguousarray(image)))
                for name in self.output_names:
                    status, mat = extractor.extract(name)
                    if status != 0:
                        raise RuntimeError(f'ncnn cannot compute {name}')
                    outputs[name].append(torch.from_numpy(np.array(mat)))
        return {name: torch.stack(value) for name, value in outputs.items()}

    def test_step(self, data: dict) -> list:
        """Predict like ``model.test_step``: preprocess ``data``, run ncnn,
        finish on the host; the data samples with the predictions."""
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        outputs = self(inputs)
        if self.task == 'Classification':
            for sample, score in zip(samples, outputs['output']):
                sample.set_pred_score(score).set_pred_label(score.argmax())
            return samples
        if self.task == 'Segmentation':
            return self.model.postprocess_result(outputs['output'], samples)
        levels = len(self.output_names) // 2
        maps = [outputs[name] for name in self.output_names]
        with torch.no_grad():
            results = self.model.bbox_head.predict_by_feat(
                maps[:levels],
                maps[levels:],
                batch_img_metas=[sample.metainfo for sample in samples],
                rescale=True)
        return self.model.add_pred_to_datasample(samples, results)
