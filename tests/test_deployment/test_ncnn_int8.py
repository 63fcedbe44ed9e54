"""int8 ncnn models written in ncnn2int8's format (edgeformer_mm's own
writer) and the activation ranges of their calibration.

- the calibration methods on known distributions;
- single layers in hand-written ncnn files: what the stock ncnn runtime
  computes from the written int8 file is the integer arithmetic of the
  intended scales (so the scales are read where they were written) and not
  the fp32 result (so the int8 kernels ran);
- the tiny classifier through pnnx: its int8 model against the fp32 one on
  photos, the .bin walk, the MAC count against PyTorch's;
- EdgeFormer-S at 256x256 (slow): almost all of its MACs in int8, its
  logits close to fp32's (its speed is the benchmark's:
  tools/analysis/benchmark.py, ncnn-int8).
"""
import os.path as osp
import struct

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODELS
from helpers import REPO, calibrate, write_photo

from edgeformer_mm.deployment.calibration import (CALIBRATION_METHODS,
                                                  ActivationObserver,
                                                  entropy_threshold)
from edgeformer_mm.deployment.ncnn_int8 import (INT8_TAG, NcnnParam,
                                                batch_items, int8_layers,
                                                int8_mac_fraction, layer_macs,
                                                new_net, quantizable_layers,
                                                quantize_ncnn, read_weights,
                                                run_and_extract)

ncnn = pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')

# ---- calibration ----------------------------------------------------------


def observe_all(method, batches, **kwargs):
    observer = ActivationObserver(method, **kwargs)
    for batch in batches:
        observer.observe(batch)
    return observer


def test_minmax_is_the_largest_absolute_value():
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(4, 8, 8)) * scale for scale in (1, 5, 2)]
    expected = max(np.abs(batch).max() for batch in batches)
    assert observe_all('minmax', batches).threshold() == np.float32(expected)


@pytest.mark.parametrize('percentile', [99., 99.99])
def test_percentile_is_near_the_quantile(percentile):
    # growing ranges: the histogram is re-binned twice
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=100_000) * scale for scale in (1, 2.5, 4)]
    observer = observe_all('percentile', batches, percentile=percentile)
    expected = np.percentile(np.abs(np.concatenate(batches)), percentile)
    bin_width = observer.range / observer.num_bins
    assert abs(observer.threshold() - expected) <= bin_width


def test_percentile_counts_zeros():
    # 90% zeros: the 50th percentile of |x| is 0, the 95th is not
    values = np.concatenate([np.zeros(9000), np.linspace(1, 2, 1000)])
    assert observe_all('percentile', [values], percentile=50).threshold() == 0
    assert 1.4 < observe_all(
        'percentile', [values], percentile=95).threshold() < 1.6


def test_entropy_clips_a_heavy_tail_above_the_bulk():
    rng = np.random.default_rng(0)
    values = rng.standard_t(3, size=200_000)
    threshold = observe_all('entropy', np.split(values, 4)).threshold()
    assert np.percentile(np.abs(values), 99) < threshold
    assert threshold < np.abs(values).max() / 2


def test_entropy_keeps_a_bounded_distribution_whole():
    values = np.random.default_rng(0).uniform(-1, 1, size=100_000)
    assert observe_all('entropy', [values]).threshold() > 0.97


def reference_entropy_threshold(histogram, num_levels=128):
    """The KL search, one candidate at a time (see entropy_threshold)."""
    counts = np.asarray(histogram, np.float64)
    end = np.flatnonzero(counts)[-1] + 1
    best, best_kept = np.inf, end
    for kept in range(num_levels, end + 1):
        reference = counts[:kept].copy()
        reference[-1] += counts[kept:end].sum()
        level = np.arange(kept) * num_levels // kept
        support = reference > 0
        level_counts = np.bincount(level, counts[:kept], num_levels)
        level_bins = np.bincount(level, support, num_levels)
        candidate = np.where(
            support, level_counts[level] / np.maximum(level_bins[level], 1), 0)
        if (candidate[support] == 0).any():
            continue
        p = reference[support] / reference.sum()
        q = candidate[support] / candidate.sum()
        divergence = np.sum(p * np.log(p / q))
        if divergence < best:
            best, best_kept = divergence, kept
    return best_kept


def test_entropy_search_matches_a_direct_one():
    rng = np.random.default_rng(0)
    normal = np.abs(rng.normal(size=50_000))
    heavy = np.abs(rng.standard_t(2, size=50_000))
    sparse = np.zeros(2048)
    sparse[[3, 40, 41, 700, 2047]] = [50, 20, 20, 3, 1]
    for histogram in [
            np.histogram(normal, 2048, (0, normal.max()))[0],
            np.histogram(heavy, 2048, (0, heavy.max()))[0], sparse
    ]:
        assert entropy_threshold(histogram) == reference_entropy_threshold(
            histogram)


def test_rebinning_is_exact():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=5000), rng.normal(size=5000) * 7
    observer = observe_all('entropy', [small, large])
    assert observer.range == pytest.approx(np.abs(small).max() * 8)
    values = np.abs(np.concatenate([small, large])).astype(np.float32)
    index = (values * np.float32(observer.num_bins / observer.range)).astype(
        np.int64)
    expected = np.bincount(np.minimum(index, 2047), minlength=2048)
    np.testing.assert_array_equal(observer.histogram, expected)


@pytest.mark.parametrize('method', CALIBRATION_METHODS)
def test_nothing_observed_is_an_error(method):
    observer = ActivationObserver(method)
    with pytest.raises(ValueError, match='no values were observed'):
        observer.threshold()
    observer.observe(np.zeros((0, 3)))
    with pytest.raises(ValueError, match='no values were observed'):
        observer.threshold()


@pytest.mark.parametrize('method', CALIBRATION_METHODS)
def test_zeros_only_give_a_zero_threshold(method):
    assert observe_all(method, [np.zeros(100)]).threshold() == 0


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='method must be one of'):
        ActivationObserver('kl')
    with pytest.raises(ValueError, match='percentile'):
        ActivationObserver('percentile', percentile=0)
    with pytest.raises(ValueError, match='non-finite'):
        ActivationObserver('minmax').observe(np.array([1, np.nan]))


# ---- single layers: the int8 arithmetic of the written file --------------


def write_fp32_model(prefix, lines, weights):
    """A .param file of ``lines`` (Input first) and a .bin file of
    ``weights``: (tagged, array) in the order the layers read them."""
    blobs = set()
    for line in lines:
        _, _, n_in, n_out, *rest = line.split()
        blobs.update(rest[:int(n_in) + int(n_out)])
    with open(prefix + '.param', 'w') as f:
        f.write('\n'.join(['7767517', f'{len(lines)} {len(blobs)}', *lines]) +
                '\n')
    with open(prefix + '.bin', 'wb') as f:
        for tagged, array in weights:
            if tagged:
                f.write(struct.pack('<I', 0))
            f.write(np.ascontiguousarray(array, '<f4').tobytes())
    return prefix + '.param', prefix + '.bin'


def int8(values, scale):
    """ncnn's float2int8 of values * scale (fp32)."""
    scaled = np.float32(values) * np.float32(scale)
    return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -127, 127)


def run_blobs(files, image, blobs):
    """The values of ``blobs`` when the model ``files`` runs on
    ``image``."""
    net = new_net(*files)
    return {
        blob: np.array(mat)
        for blob, mat in run_and_extract(net, image, blobs)
    }


def run_blob(param_file, bin_file, image, blob='out'):
    return run_blobs((param_file, bin_file), image, [blob])[blob]


def input_with_outlier(rng, shape):
    """Normal values and one of 20: a coarse int8 step, so that int8
    results are far from the fp32 ones."""
    x = rng.normal(size=shape).astype(np.float32)
    x.flat[7] = 20
    return x


# (type, kernel, stride, groups); the 3x3 stride-1 convolution would be a
# Winograd one.
CONVOLUTIONS = [('Convolution', 3, 2, 1), ('Convolution', 3, 1, 1),
                ('Convolution', 1, 1, 1), ('ConvolutionDepthWise', 3, 1, 16)]


@pytest.mark.parametrize('kind,kernel,stride,groups', CONVOLUTIONS)
def test_convolution_is_computed_in_int8(tmp_path, kind, kernel, stride,
                                         groups):
    rng = np.random.default_rng(0)
    channels, size = 16, 12
    num_output = 24 if groups == 1 else channels
    weight = rng.normal(size=(num_output, channels // groups, kernel,
                              kernel)).astype(np.float32)
    bias = rng.normal(size=num_output).astype(np.float32)
    group = f' 7={groups}' if groups > 1 else ''
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            f'Input input 0 1 input 0={size} 1={size} 2={channels}',
            f'{kind} conv 1 1 input out 0={num_output} 1={kernel} 3={stride} '
            f'4={kernel // 2} 5=1 6={weight.size}{group}'
        ], [(True, weight), (False, bias)])
    x = input_with_outlier(rng, (1, channels, size, size))
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [x], 'minmax')
    assert int8_layers(files[0]) == ['conv']

    input_scale = 127 / np.abs(x).max()
    rows = weight.reshape(num_output, -1)
    weight_scales = 127 / np.abs(rows).max(1)
    sums = F.conv2d(
        torch.from_numpy(int8(x, input_scale)).double(),
        torch.from_numpy(int8(rows, weight_scales[:, None])).reshape(
            weight.shape).double(),
        stride=stride,
        padding=kernel // 2,
        groups=groups).numpy()[0]
    expected = sums / (input_scale * weight_scales[:, None, None]) + (
        bias[:, None, None])
    actual = run_blob(*files, x[0])
    scale = np.abs(expected).max()
    # (x86's depthwise kernel dequantizes with an approximate reciprocal)
    assert np.abs(actual - expected).max() < 1e-3 * scale
    assert np.abs(actual - run_blob(*fp32, x[0])).max() > 5e-3 * scale


def test_winograd_convolution_accumulates_exactly(tmp_path):
    # ncnn's int8 Winograd would overflow int32 on this (positive weights,
    # a constant input at the clip): the layer is kept off it
    channels, size = 256, 8
    weight = np.ones((8, channels, 3, 3), np.float32)
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            f'Input input 0 1 input 0={size} 1={size} 2={channels}',
            f'Convolution conv 1 1 input out 0=8 1=3 4=1 5=0 6={weight.size}'
        ], [(True, weight)])
    x = np.ones((1, channels, size, size), np.float32)
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [x], 'minmax')
    assert '31=64' in open(files[0]).read().splitlines()[-1]
    expected = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight).double(),
        padding=1).numpy()[0]
    np.testing.assert_allclose(run_blob(*files, x[0]), expected, rtol=1e-6)


def test_requantized_convolution_chain(tmp_path):
    rng = np.random.default_rng(0)
    channels, size = 16, 10
    first = rng.normal(size=(channels, channels, 1, 1)).astype(np.float32)
    second = rng.normal(size=(channels, 1, 3, 3)).astype(np.float32)
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            f'Input input 0 1 input 0={size} 1={size} 2={channels}',
            f'Convolution pointwise 1 1 input mid 0={channels} 1=1 5=0 '
            f'6={first.size}',
            f'ConvolutionDepthWise depthwise 1 1 mid out 0={channels} 1=3 4=1 '
            f'5=0 6={second.size} 7={channels}'
        ], [(True, first), (True, second)])
    x = input_with_outlier(rng, (1, channels, size, size))
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [x], 'minmax')
    lines = open(files[0]).read().splitlines()
    assert lines[3].endswith('8=102') and lines[4].endswith('8=1')

    def conv(values, scale, weights, groups):
        rows = weights.reshape(len(weights), -1)
        weight_scales = 127 / np.abs(rows).max(1)
        sums = F.conv2d(
            torch.from_numpy(int8(values, scale)).double(),
            torch.from_numpy(int8(rows, weight_scales[:, None])).reshape(
                weights.shape).double(),
            padding=weights.shape[-1] // 2,
            groups=groups).numpy()
        return sums / (scale * weight_scales[:, None, None])

    middle = run_blob(*fp32, x[0], 'mid')
    # the first convolution writes the second's int8 input directly
    expected = conv(
        conv(x, 127 / np.abs(x).max(), first, 1), 127 / np.abs(middle).max(),
        second, channels)[0]
    actual = run_blob(*files, x[0])
    assert np.abs(actual - expected).max() < 1e-3 * np.abs(expected).max()


def token_linear_model(tmp_path, rows=10, width=32, num_output=20):
    """An InnerProduct on matrices (rows, width), pnnx's token-wise linear
    layer, here on a batch of two (ncnn's batch axis, as pnnx writes
    MobileViT's patch pixels): the input (1, 2, rows, width), the second
    matrix ten times larger."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(num_output, width)).astype(np.float32)
    bias = rng.normal(size=num_output).astype(np.float32)
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            f'Input input 0 1 input 0={width} 1={rows} 2=2',
            f'Reshape tokens 1 1 input matrices 0={width} 1={rows} 2=2 13=0',
            f'InnerProduct linear 1 1 matrices out 0={num_output} 1=1 '
            f'2={weight.size}'
        ], [(True, weight), (False, bias)])
    x = input_with_outlier(rng, (1, 2, rows, width)) / 2
    x[0, 1] *= 10
    return fp32, weight, bias, x


def run_batch(param_file, bin_file, image):
    net = new_net(param_file, bin_file)
    return np.stack([
        items for _, mat in run_and_extract(net, image, ['out'])
        for items in batch_items(mat)
    ])


def test_token_wise_inner_product_stays_fp32_unless_asked(tmp_path):
    fp32, weight, bias, x = token_linear_model(tmp_path)
    rows, width = x.shape[2:]
    assert layer_macs(*fp32, x.shape) == {'linear': 2 * rows * weight.size}
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [x], 'minmax')
    assert int8_layers(files[0]) == []
    assert open(files[1], 'rb').read() == open(fp32[1], 'rb').read()

    files = quantize_ncnn(
        *fp32, str(tmp_path / 'int8'), [x], 'minmax', int8_token_linear=True)
    assert int8_layers(files[0]) == ['linear']
    # the range of both matrices
    input_scale = 127 / np.abs(x).max()
    weight_scales = 127 / np.abs(weight).max(1)
    expected = int8(x[0], input_scale) @ int8(
        weight, weight_scales[:,
                              None]).T / (input_scale * weight_scales) + bias
    actual = run_batch(*files, x[0])
    assert actual.shape == expected.shape
    scale = np.abs(expected).max()
    assert np.abs(actual - expected).max() < 1e-5 * scale
    assert np.abs(actual - run_batch(*fp32, x[0])).max() > 5e-3 * scale


def test_written_file_layout(tmp_path):
    # The weight reads of an int8 Convolution as ncnn's load_model reads
    # them: int8 weights (tag, padded to 4 bytes), bias, scales, input
    # scale.
    weight = np.arange(1, 28, dtype=np.float32).reshape(3, 1, 3, 3)
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            'Input input 0 1 input 0=4 1=4 2=1',
            'Convolution conv 1 1 input out 0=3 1=3 4=1 5=1 6=27'
        ], [(True, weight), (False, np.float32([1, 2, 3]))])
    x = np.full((1, 1, 4, 4), 2, np.float32)
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [x], 'minmax')
    data = open(files[1], 'rb').read()
    assert struct.unpack_from('<I', data)[0] == INT8_TAG
    weights = np.frombuffer(data, np.int8, 27, 4)
    np.testing.assert_array_equal(weights.reshape(3, 9)[:, -1], 127)
    assert data[31:32] == b'\0'  # padding of the 27 bytes
    floats = np.frombuffer(data, '<f4', offset=32)
    np.testing.assert_allclose(floats,
                               [1, 2, 3, 127 / 9, 127 / 18, 127 / 27, 127 / 2])


def test_unknown_weight_layer_is_an_error(tmp_path):
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            'Input input 0 1 input 0=4 1=4 2=1',
            'DeformableConv2D conv 1 1 input out 0=1 1=3 5=0 6=9'
        ], [(True, np.ones(9))])
    with pytest.raises(NotImplementedError, match='DeformableConv2D.*conv'):
        quantize_ncnn(*fp32, str(tmp_path / 'int8'), [])
    assert not osp.exists(tmp_path / 'int8.param')


def test_bin_of_the_wrong_size_is_an_error(tmp_path):
    fp32 = write_fp32_model(
        str(tmp_path / 'fp32'), [
            'Input input 0 1 input 0=4 1=4 2=1',
            'Convolution conv 1 1 input out 0=1 1=3 5=0 6=9'
        ], [(True, np.ones(9))])
    param = NcnnParam.read(fp32[0])
    data = open(fp32[1], 'rb').read()
    with pytest.raises(ValueError, match='ends in the weights of conv'):
        read_weights(param, data[:-4])
    with pytest.raises(ValueError, match='4 bytes after'):
        read_weights(param, data + bytes(4))


# ---- the tiny classifier through pnnx -------------------------------------

CALIBRATION_PHOTOS = ('rocket', 'cat', 'hubble_deep_field',
                      'immunohistochemistry')
TEST_PHOTOS = ('astronaut', 'coffee', 'chelsea')
# int8 against fp32 on the test photos: the cosine of the classifier's
# input features (calibrated random weights; trained ones do better), the
# scores.
FEATURE_COSINE = 0.99
SCORE_TOLERANCE = 0.01
# EdgeFormer-S, calibrated random weights, percentile: its logits against
# fp32 (0.998 measured on photos).
S_LOGITS_COSINE = 0.99


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny classifier (calibrated random weights) as an fp32 ncnn model
    at its input size, the model, and its inputs for the photos."""
    from edgeformer_mm.deployment import convert_to_ncnn
    from edgeformer_mm.utils import build_model
    config, size = TINY_MODELS['classification']
    torch.manual_seed(0)
    model = calibrate(build_model(osp.join(REPO, config)))
    model.backbone.switch_to_deploy((size, size))
    root = tmp_path_factory.mktemp('ncnn_int8')
    files = convert_to_ncnn(model, 'Classification', (size, size),
                            str(root / 'fp32'))
    inputs = {}
    for name in CALIBRATION_PHOTOS + TEST_PHOTOS:
        image = cv2.resize(
            cv2.imread(write_photo(name, root / f'{name}.png')), (size, size))
        data = dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)])
        inputs[name] = model.data_preprocessor(data, False)['inputs'].numpy()
    return files, model, inputs


def test_tiny_classifier_in_int8(tiny, tmp_path):
    fp32, _, inputs = tiny
    candidates = quantizable_layers(fp32[0])
    kept = {candidates[0], candidates[-1]}  # the stem and the classifier
    files = quantize_ncnn(
        *fp32,
        str(tmp_path / 'int8'), [inputs[name] for name in CALIBRATION_PHOTOS],
        'percentile',
        exclude=kept)
    quantized = int8_layers(files[0])
    assert set(quantized) == set(candidates) - kept
    param = NcnnParam.read(files[0])
    features = next(layer.bottoms[0] for layer in param.layers
                    if layer.name == candidates[-1])
    for name in TEST_PHOTOS:
        expected = run_blobs(fp32, inputs[name][0], [features, 'output'])
        actual = run_blobs(files, inputs[name][0], [features, 'output'])
        cosine = expected[features] @ actual[features] / np.linalg.norm(
            expected[features]) / np.linalg.norm(actual[features])
        assert cosine > FEATURE_COSINE, name
        assert np.abs(expected['output'] -
                      actual['output']).max() < SCORE_TOLERANCE, name
        assert expected['output'].argmax() == actual['output'].argmax(), name


def test_quantizing_nothing_rewrites_the_same_files(tiny, tmp_path):
    fp32 = tiny[0]
    files = quantize_ncnn(
        *fp32, str(tmp_path / 'same'), [], exclude=quantizable_layers(fp32[0]))
    assert open(files[1], 'rb').read() == open(fp32[1], 'rb').read()
    assert open(files[0]).read() == open(fp32[0]).read()


def test_bad_calibration_is_an_error_that_writes_nothing(tiny, tmp_path):
    fp32, _, inputs = tiny
    prefix = str(tmp_path / 'int8')
    with pytest.raises(ValueError, match='at least one calibration input'):
        quantize_ncnn(*fp32, prefix, [])
    with pytest.raises(ValueError, match='no layers named'):
        quantize_ncnn(*fp32, prefix, [inputs['cat']], exclude=['nope'])
    with pytest.raises(ValueError, match=r'batches of one image'):
        quantize_ncnn(*fp32, prefix, [inputs['cat'][0]])
    assert not osp.exists(prefix + '.param')
    assert not osp.exists(prefix + '.bin')


def test_macs_match_pytorch(tiny, tmp_path):
    from edgeformer_mm.utils.complexity import count_macs
    fp32, model, inputs = tiny
    shape = inputs['cat'].shape
    assert sum(layer_macs(*fp32, shape).values()) == count_macs(
        model, torch.zeros(shape))
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), [inputs['cat']],
                          'minmax')
    assert int8_mac_fraction(*fp32, shape) == 0
    # all but the circular convolutions' MatMuls
    assert 0.95 < int8_mac_fraction(*files, shape) < 1


# ---- EdgeFormer-S ---------------------------------------------------------


@pytest.mark.slow
def test_edgeformer_s_int8_stays_close_to_fp32(tmp_path):
    """All but the GCC's products in int8 (the kernels themselves are
    checked layer by layer above), the logits close to fp32's."""
    from mmpretrain import get_model

    from edgeformer_mm.deployment import convert_to_ncnn
    torch.manual_seed(0)
    model = calibrate(get_model('edgeformer-s_8xb128_in1k'))
    model.backbone.switch_to_deploy((256, 256))
    fp32 = convert_to_ncnn(model, 'Classification', (256, 256),
                           str(tmp_path / 'fp32'))
    rng = np.random.default_rng(0)
    inputs = [
        rng.normal(size=(1, 3, 256, 256)).astype(np.float32) for _ in range(4)
    ]
    files = quantize_ncnn(*fp32, str(tmp_path / 'int8'), inputs, 'percentile')
    assert int8_mac_fraction(*files, (1, 3, 256, 256)) > 0.95
    param = NcnnParam.read(fp32[0])
    logits = next(layer.bottoms[0] for layer in param.layers
                  if layer.kind == 'Softmax')
    for x in inputs:
        expected = run_blobs(fp32, x[0], [logits])[logits]
        actual = run_blobs(files, x[0], [logits])[logits]
        cosine = expected @ actual / np.linalg.norm(expected) / np.linalg.norm(
            actual)
        assert cosine > S_LOGITS_COSINE
