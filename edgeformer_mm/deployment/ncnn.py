"""ncnn models from the PyPI ``pnnx`` converter, and a runner for them.

mmdeploy's own ncnn converter (``mmdeploy_onnx2ncnn``) and its
DetectionOutput layer exist only in a source build. Here the network is
traced with TorchScript and converted by ``pnnx``; what ncnn cannot run
stays on the host:

- classification: the graph ends with the softmax scores (``output``);
- segmentation: it ends with the class logits resized to the input
  (``output``), the argmax is taken on the host (ncnn has no ArgMax layer);
- detection: it ends with the final detections (``detections``, rows
  ``[label, score, x1, y1, x2, y2]``, labels from 1, boxes in input pixels;
  an empty blob when nothing is detected), from ncnn's ``DetectionOutput``
  layer (see :func:`append_detection_output`); only the rescaling to the
  original image stays on the host.

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
import warnings
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import with_four_dimensional_attention

INPUT_NAME = 'input'
TASKS = ('Classification', 'ObjectDetection', 'Segmentation')


class ConverterNotFoundError(RuntimeError):
    """The pnnx converter or the ncnn runtime is not installed."""


DETECTIONS = 'detections'
# The blobs of the traced detection graph, DetectionOutput's inputs (the
# names of Caffe's SSD).
DETECTION_INPUTS = ('mbox_loc', 'mbox_conf', 'mbox_priorbox')
# ncnn's per-layer option mask (param 31): bit 0 no fp16 arithmetic, bit 1
# no fp16 storage (nor packing), bit 2 no bf16 storage.
FP32_ONLY = 0b111


def output_names(model: nn.Module, task: str) -> List[str]:
    """Names of the ncnn outputs of ``model`` for ``task``, in order."""
    if task == 'ObjectDetection':
        return [DETECTIONS]
    return ['output']


class ExportGraph(nn.Module):
    """The part of an mmpretrain, mmdet or mmseg model that is exported,
    traced for ncnn or exported to ONNX: the network up to the outputs of
    its task (see the module docstring); the rest runs on the host.

    Args:
        model (nn.Module): The model, in eval mode.
        task (str): 'Classification', 'ObjectDetection' or 'Segmentation'.
        host_nms (bool): Detection ends with ``boxes`` (1, P, 4) and
            ``scores`` (1, P, num_classes), the decoded boxes of all P
            priors and their class scores (zero for the degenerate boxes
            mmdet drops), for runtimes without an NMS layer (ExecuTorch,
            LiteRT): the score threshold and the NMS run on the host. By
            default it ends with the inputs of ncnn's ``DetectionOutput``.
    """

    def __init__(self, model: nn.Module, task: str, host_nms: bool = False):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, not {task!r}')
        self.model = model
        self.task = task
        self.host_nms = host_nms

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
        if len(outputs) != 2:
            raise NotImplementedError(
                'exported detection needs a head that predicts class scores '
                f'and boxes only, not {len(outputs)} outputs (e.g. '
                'centerness)')
        with warnings.catch_warnings():
            # The sizes (ints) are constants of the static graph.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            inputs = detection_output_inputs(self.model.bbox_head, *outputs,
                                             tuple(map(int, x.shape[2:])))
            self.num_priors = int(inputs[0].shape[1])  # for the .param file
        if self.host_nms:
            boxes, confidence, _ = inputs
            # Without DetectionOutput's background column.
            return boxes, confidence[..., 1:]
        return inputs


def detection_output_inputs(
        head: nn.Module, cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        input_size: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
    """The inputs of ncnn's ``DetectionOutput`` for which it gives the
    detections of mmdet's ``predict_by_feat`` (before the rescaling to the
    original image), for a batch of one image of ``input_size``.

    The boxes are decoded here, exactly as mmdet does (``delta2bbox``: the
    ratio clamp, clipped to the input), and the scores of boxes that mmdet
    removes (``min_bbox_size``) are zeroed. ``DetectionOutput`` decodes
    again, ``center +- size / 2`` of ``prior + variance * location``: the
    decoded boxes are passed as the priors with zero variances, so that its
    decode gives them back (to the float rounding of ``center +- size / 2``,
    about 1e-7 relative) and it only thresholds, sorts and runs NMS.

    Returns:
        tuple[Tensor]: ``mbox_loc`` (1, P, 4), the boxes again (ignored:
        zero variances); ``mbox_conf`` (1, P, num_classes + 1), mmdet's
        scores after a background column of zeros (DetectionOutput's class
        0; it skips the boxes whose background score is at least
        1 - confidence_threshold); ``mbox_priorbox`` (1, 2, P * 4), the boxes
        (x1, y1, x2, y2) and zeros (the variances). P is the prior count of
        all levels, in mmdet's order.
    """
    check_detection_head(head)
    coder = head.bbox_coder
    height, width = input_size
    with torch.no_grad():  # constants of the graph
        priors = torch.cat(
            head.prior_generator.grid_priors(
                [tuple(map(int, score.shape[-2:])) for score in cls_scores],
                device=cls_scores[0].device))
        # delta2bbox's centres and sizes, as mmdet computes them
        prior_xy = (priors[:, :2] + priors[:, 2:]) * 0.5
        prior_wh = priors[:, 2:] - priors[:, :2]
        stds = priors.new_tensor(coder.stds)
        means = priors.new_tensor(coder.means)
        max_xy = priors.new_tensor([width, height, width, height])
    channels = head.cls_out_channels
    scores = torch.cat([
        score.permute(0, 2, 3, 1).reshape(1, -1, channels)
        for score in cls_scores
    ], 1)
    deltas = torch.cat(
        [pred.permute(0, 2, 3, 1).reshape(1, -1, 4) for pred in bbox_preds], 1)
    # mmdet's delta2bbox
    deltas = deltas * stds + means
    max_ratio = float(np.abs(np.log(16 / 1000)))
    dwh = deltas[..., 2:].clamp(min=-max_ratio, max=max_ratio)
    centres = prior_xy + prior_wh * deltas[..., :2]
    sizes = prior_wh * dwh.exp()
    boxes = torch.cat([centres - sizes * 0.5, centres + sizes * 0.5], -1)
    if coder.clip_border:
        boxes = torch.min(boxes.clamp(min=0), max_xy)
    if head.use_sigmoid_cls:
        foreground = scores.sigmoid()
    else:
        foreground = scores.softmax(-1)[..., :-1]
    if head.test_cfg.get('min_bbox_size', -1) == 0:
        # BaseDenseHead._bbox_post_process drops the boxes not wider and
        # higher than min_bbox_size: 0, the degenerate ones (e.g. clipped to
        # a border). Sizes are >= 0 here: ceil gives 1 for a positive one,
        # 0 for 0 (ncnn has no comparison layer).
        valid = (boxes[..., 2:] - boxes[..., :2]).ceil().clamp(max=1)
        foreground = foreground * (valid[..., :1] * valid[..., 1:])
    confidence = torch.cat([foreground[..., :1] * 0, foreground], -1)
    priorbox = torch.cat(
        [boxes.reshape(1, 1, -1), (boxes * 0).reshape(1, 1, -1)], 1)
    return boxes, confidence, priorbox


def detection_level_priors(model: nn.Module,
                           input_size: Tuple[int, int]) -> List[int]:
    """The number of priors of each level of a dense detection head at
    ``input_size`` (H, W), in the order of :func:`detection_output_inputs`'
    boxes: the host needs them to apply mmdet's per-level ``nms_pre``."""
    with torch.no_grad():
        cls_scores, _ = model(torch.zeros(1, 3, *input_size), mode='tensor')
    channels = model.bbox_head.cls_out_channels
    return [score[0].numel() // channels for score in cls_scores]


def check_detection_head(head: nn.Module):
    """Raise NotImplementedError unless :func:`detection_output_inputs`
    reproduces ``head``'s predictions."""
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    coder, cfg = head.bbox_coder, head.test_cfg
    problems = []
    if type(coder) is not DeltaXYWHBBoxCoder or coder.add_ctr_clamp:
        problems.append('a DeltaXYWHBBoxCoder without add_ctr_clamp')
    if getattr(head.loss_cls, 'custom_cls_channels', False):
        problems.append('plain sigmoid or softmax scores')
    if cfg.get('min_bbox_size', -1) > 0:
        problems.append('min_bbox_size 0 or none (a larger one is applied '
                        'in the original image)')
    nms = cfg.get('nms', {})
    if nms.get('type', 'nms') != 'nms' or nms.get('class_agnostic', False):
        problems.append("per-class nms (type='nms')")
    if problems:
        raise NotImplementedError(
            'ncnn detection needs ' + ', '.join(problems) +
            f' ({type(head).__name__}, test_cfg {dict(cfg)})')


def detection_output_line(head: nn.Module, num_priors: int) -> str:
    """The ``DetectionOutput`` layer of the .param file (see
    :func:`detection_output_inputs` for its inputs).

    ``confidence_threshold`` is test_cfg's ``score_thr`` (both keep scores
    above it), ``nms_threshold`` its ``nms.iou_threshold`` (both suppress a
    box whose IoU with a better one of its class is above it, areas without
    +1), ``keep_top_k`` its ``max_per_img``.

    The candidate caps differ: mmdet's ``nms_pre`` keeps the best
    ``nms_pre`` (prior, class) pairs above ``score_thr`` of each level,
    ncnn's ``nms_top_k`` the best ``nms_top_k`` boxes of each class (over all
    levels) before its NMS. ``nms_top_k`` is ``nms_pre`` (as in mmdeploy's
    ncnn SSD; all priors without ``nms_pre``), which bounds the NMS work as
    ``nms_pre`` does. Both caps only drop low scores, so the detections are
    the same when neither binds (no level has more than ``nms_pre`` pairs
    above ``score_thr`` and no class more than ``nms_pre`` boxes), and when
    one binds as long as mmdet returns ``max_per_img`` detections that all
    score above every candidate either cap dropped (NMS decides a box from
    the better ones of its class only).
    """
    cfg = head.test_cfg
    nms_pre = cfg.get('nms_pre', -1)
    params = {
        0: head.num_classes + 1,
        1: float(cfg.nms.iou_threshold),
        2: min(nms_pre, num_priors) if nms_pre > 0 else num_priors,
        3: int(cfg.get('max_per_img', -1)),
        4: float(cfg.get('score_thr', 0)),
    }
    if params[3] <= 0:  # mmdet keeps all
        params[3] = num_priors * head.num_classes
    return ' '.join([
        'DetectionOutput', 'detection_output', '3', '1', *DETECTION_INPUTS,
        DETECTIONS
    ] + [f'{key}={value!r}' for key, value in params.items()])


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


def convert_to_ncnn(model: nn.Module,
                    task: str,
                    input_size: Tuple[int, int],
                    out_prefix: str,
                    fp16: bool = False) -> List[str]:
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

    Detection: the graph ends in ncnn's DetectionOutput (see
    :func:`detection_output_inputs`, :func:`detection_output_line` and
    :func:`append_detection_output`); its input size is the image size
    mmdet clips the boxes to (a pipeline that resizes to the input without
    keeping the ratio).

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
            traced = torch.jit.trace(graph.eval(), example, check_trace=False)
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
        if task == 'ObjectDetection':
            rename_blobs(param, DETECTION_INPUTS)
            append_detection_output(
                param, detection_output_line(model.bbox_head,
                                             graph.num_priors))
        else:
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
        renamed.append(' '.join(
            [kind, name, n_in, n_out, *blobs, *rest[n_blobs:]]))
    if not set(names.values()) <= blobs_seen or f'out{len(outputs)}' in (
            blobs_seen):
        raise RuntimeError(f'{param_file} does not have exactly the blobs '
                           f'in0 and out0..out{len(outputs) - 1}')
    with open(param_file, 'w') as f:
        f.write('\n'.join([magic, counts, *renamed]) + '\n')


WEIGHT_LAYERS = ('Convolution', 'ConvolutionDepthWise', 'Deconvolution',
                 'DeconvolutionDepthWise', 'InnerProduct', 'Gemm',
                 'MultiHeadAttention', 'Convolution1D', 'Convolution3D')


def append_detection_output(param_file: str, line: str):
    """Append the DetectionOutput ``line`` to a .param file that ends with
    its inputs, and keep the post-processing before it in fp32.

    The layers after the network's last weight layers (convolutions...),
    which decode the boxes and compute the scores, get ncnn's per-layer
    option mask (param 31) against fp16 storage and arithmetic: with fp16
    storage (ncnn's default on ARMv8.2), boxes of a few hundred pixels would
    be rounded to 0.25 px and scores to 1e-4 before DetectionOutput (which
    has no fp16 path and would only get the rounded values). ncnn does not
    convert an fp16 blob for a layer whose mask disables fp16 storage: each
    blob entering the masked part goes through a ``DeepCopy`` first, an
    unmasked layer without fp16 storage on any CPU, for which ncnn converts
    it to fp32.
    """
    with open(param_file) as f:
        magic, counts, *lines = f.read().splitlines()
    num_layers, num_blobs = map(int, counts.split())
    layers = []  # [kind, name, bottoms, tops, params]
    for text in lines:
        kind, name, n_in, n_out, *rest = text.split()
        n_in, n_out = int(n_in), int(n_out)
        layers.append([
            kind, name, rest[:n_in], rest[n_in:n_in + n_out],
            rest[n_in + n_out:]
        ])
    producer, consumers = {}, {}
    for i, (_, _, bottoms, tops, _) in enumerate(layers):
        for blob in bottoms:
            consumers.setdefault(blob, []).append(i)
        for blob in tops:
            producer[blob] = i
    # the layers from which no weight layer can be reached (last to first:
    # the layers are in topological order)
    feeds_weights = [False] * len(layers)
    for i in reversed(range(len(layers))):
        feeds_weights[i] = any(
            layers[j][0] in WEIGHT_LAYERS or feeds_weights[j]
            for blob in layers[i][3] for j in consumers.get(blob, []))
    tail = [
        kind not in ('Input', *WEIGHT_LAYERS) and not feeds_weights[i]
        for i, (kind, *_) in enumerate(layers)
    ]
    out, copies = [], set()
    for i, (kind, name, bottoms, tops, params) in enumerate(layers):
        if tail[i]:
            for k, blob in enumerate(bottoms):
                if not tail[producer[blob]]:
                    copy = f'{blob}_fp32'
                    if copy in copies:  # pnnx gives each blob one consumer
                        raise RuntimeError(f'{param_file}: the blob {blob} '
                                           'has more than one consumer')
                    copies.add(copy)
                    out.append(f'DeepCopy {copy} 1 1 {blob} {copy}')
                    bottoms[k] = copy
            params = [p for p in params if not p.startswith('31=')]
            params.append(f'31={FP32_ONLY}')
        out.append(' '.join([
            kind, name,
            str(len(bottoms)),
            str(len(tops)), *bottoms, *tops, *params
        ]))
    with open(param_file, 'w') as f:
        f.write('\n'.join([
            magic,
            f'{num_layers + 1 + len(copies)} {num_blobs + 1 + len(copies)}',
            *out, line
        ]) + '\n')


class NcnnRunner:
    """Run converted ncnn files for classification, detection or
    segmentation and return predictions as the PyTorch model does.

    Args:
        model (nn.Module): A model built from the config the files were
            converted from; only its data preprocessor and (segmentation,
            detection) its way of storing predictions are used, not its
            weights.
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
        for option in [
                'use_fp16_storage', 'use_fp16_packed', 'use_fp16_arithmetic'
        ]:
            setattr(self.net.opt, option, fp16)
        for path, load in [(param_file, self.net.load_param),
                           (bin_file, self.net.load_model)]:
            if load(path) != 0:
                raise RuntimeError(f'ncnn cannot load {path}')
        self._ncnn = ncnn

    def __call__(self, inputs: Tensor) -> Dict[str, Union[Tensor, list]]:
        """Run the network on a batch of preprocessed images (N, 3, H, W);
        the outputs by name, each batched; ``detections``: a list of (K, 6)
        tensors, one per image (K = 0 when nothing is detected)."""
        outputs = {name: [] for name in self.output_names}
        for image in inputs.detach().float().cpu().numpy():
            # ncnn.Mat uses the array's memory: keep it until the extraction
            image = np.ascontiguousarray(image)
            with self.net.create_extractor() as extractor:
                extractor.input(INPUT_NAME, self._ncnn.Mat(image))
                for name in self.output_names:
                    status, mat = extractor.extract(name)
                    if status != 0 or (mat.empty() and name != DETECTIONS):
                        raise RuntimeError(f'ncnn cannot compute {name}')
                    if mat.empty():  # (np.array of an empty Mat crashes)
                        value = np.zeros(0, np.float32)
                    else:
                        value = np.array(mat)
                    outputs[name].append(torch.from_numpy(value))
        if self.task == 'ObjectDetection':
            # DetectionOutput leaves its blob empty when nothing is detected
            return {
                name: [value.reshape(-1, 6) for value in values]
                for name, values in outputs.items()
            }
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
        results = [
            detections_to_instances(rows, sample.metainfo,
                                    tuple(inputs.shape[2:]))
            for rows, sample in zip(outputs[DETECTIONS], samples)
        ]
        return self.model.add_pred_to_datasample(samples, results)


def detections_to_instances(rows: Tensor, img_meta: dict,
                            input_size: Tuple[int, int]):
    """mmdet's ``pred_instances`` from the rows of ``detections`` (K, 6):
    labels from 0, boxes rescaled to the original image as
    ``BaseDenseHead._bbox_post_process`` does (``scale_factor``)."""
    from mmdet.structures.bbox import scale_boxes
    from mmengine.structures import InstanceData

    if tuple(img_meta['img_shape'][:2]) != tuple(input_size):
        # mmdet clips the boxes to img_shape, the graph to the input.
        raise ValueError(
            f'the image fills {img_meta["img_shape"][:2]} of the '
            f'{input_size} input: the ncnn detection graph clips the boxes '
            'to the whole input (use a pipeline that resizes to the input '
            'size without keeping the ratio)')
    rows = rows.float()
    results = InstanceData()
    results.bboxes = rows[:, 2:6]
    if 'scale_factor' in img_meta:
        results.bboxes = scale_boxes(results.bboxes,
                                     [1 / s for s in img_meta['scale_factor']])
    results.scores = rows[:, 1]
    results.labels = rows[:, 0].round().long() - 1
    return results
