"""OpenVINO runs the ONNX Runtime bundles' end2end.onnx as it is (mmdeploy's
NMS graph of detection included): on the CPU in fp32 it predicts as ONNX
Runtime does within the tolerances of the ONNX Runtime parity tests, for
the tiny models of the three tasks (calibrated random weights, a real
photo), and so does its IR saved with ``compress_to_fp16=False``."""
import numpy as np
import pytest
import torch
from helpers import audited_run, write_photo

from edgeformer_mm.deployment.openvino import (FP32_CONFIG, compile_onnx,
                                               import_openvino)
from edgeformer_mm.deployment.parity import (difference, label_agreement,
                                             match_detections)
from edgeformer_runtime import Bundle, preprocess
from edgeformer_runtime.backends import OnnxRuntimeBackend

try:
    ov = import_openvino()
except ImportError:
    pytest.skip('OpenVINO is not installed', allow_module_level=True)
pytest.importorskip('onnxruntime', reason='ONNX Runtime is not installed')
pytest.importorskip('skimage', reason='scikit-image is not installed')


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_photo('astronaut',
                       tmp_path_factory.mktemp('photo') / 'astronaut.png')


def openvino_outputs(compiled, names, image):
    outputs = compiled(image[None])
    return {name: outputs[compiled.output(name)] for name in names}


def detections(outputs):
    """mmdeploy's dets (1, K, 5) and labels (1, K), as InstanceData at the
    network input, less mmdeploy's padding (zero scores) and the boxes that
    clipping leaves empty (as the runtime and the ONNX Runtime parity tests
    drop them)."""
    from mmengine.structures import InstanceData
    dets = torch.from_numpy(outputs['dets'][0])
    labels = torch.from_numpy(outputs['labels'][0])
    valid = ((dets[:, 4] > 0) & (dets[:, 2] > dets[:, 0]) &
             (dets[:, 3] > dets[:, 1]))
    return InstanceData(
        bboxes=dets[valid, :4], scores=dets[valid, 4], labels=labels[valid])


def assert_as_onnxruntime(task, expected, actual, where):
    """The ONNX Runtime parity tests' tolerances (test_parity.py)."""
    if task == 'detection':
        parity = match_detections(detections(expected), detections(actual))
        assert parity['expected'] > 0, where
        assert parity['unmatched'] == 0, (where, parity)
        assert parity['box'] <= 1e-2, (where, parity)
        assert parity['score'] <= 1e-4, (where, parity)
        return
    (name, ), (exp, ), (act, ) = expected, expected.values(), actual.values()
    parity = difference(torch.from_numpy(exp), torch.from_numpy(act))
    assert parity['rel'] <= 1e-4, (where, name, parity)
    if task == 'segmentation':
        assert label_agreement(torch.from_numpy(exp),
                               torch.from_numpy(act)) >= 0.999, where


@pytest.mark.slow
@pytest.mark.parametrize('task',
                         ['classification', 'detection', 'segmentation'])
def test_openvino_matches_onnxruntime(task, tiny_bundles, photo, tmp_path):
    bundle = Bundle.load(tiny_bundles(task, 'onnxruntime')[0])
    image = preprocess(photo, bundle.preprocess).input
    expected = OnnxRuntimeBackend(bundle)(image)

    compiled = compile_onnx(bundle.model_file('model'))
    assert compiled.get_property('INFERENCE_PRECISION_HINT') == ov.Type.f32
    from_onnx = openvino_outputs(compiled, bundle.outputs, image)
    assert_as_onnxruntime(task, expected, from_onnx, 'ONNX')

    # OpenVINO's own IR: fp32 weights only where asked (its default stores
    # them in fp16, 1e-4 to 7e-4 off).
    ir = str(tmp_path / 'model.xml')
    ov.save_model(
        ov.Core().read_model(bundle.model_file('model')),
        ir,
        compress_to_fp16=False)
    from_ir = openvino_outputs(
        ov.Core().compile_model(ir, 'CPU', FP32_CONFIG), bundle.outputs,
        image)
    for name in bundle.outputs:
        np.testing.assert_array_equal(from_ir[name], from_onnx[name])
    assert_as_onnxruntime(task, expected, from_ir, 'IR')


def test_openvino_sends_no_telemetry(tmp_path):
    """Compiled and run through edgeformer_mm, OpenVINO starts no process
    and opens no connection, also where openvino-telemetry is installed
    (with it, ``import openvino`` forks a process that sends a usage
    event)."""
    onnx_file = str(tmp_path / 'net.onnx')
    torch.onnx.export(
        torch.nn.Conv2d(3, 4, 3),
        torch.rand(1, 3, 8, 8),
        onnx_file,
        input_names=['input'],
        dynamo=False)
    report = audited_run(
        f'''
        compile_onnx({onnx_file!r})(np.ones((1, 3, 8, 8), np.float32))
        ''',
        tmp_path,
        setup='import numpy as np; '
        'from edgeformer_mm.deployment.openvino import compile_onnx')
    assert report['events'] == []
    if report['traced']:
        assert report['connections'] == []
        assert report['programs'] == []
