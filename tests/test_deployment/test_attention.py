"""mmpretrain's attention layers in their 4-D form: the same outputs,
layers traced without a 5-D tensor, and MobileViT and EdgeNeXt through the
ncnn conversion that tools/deploy.py and the benchmark use."""
import pytest
import torch
from helpers import calibrate
from mmpretrain import get_model
from mmpretrain.models.utils.attention import (ChannelMultiheadAttention,
                                               MultiheadAttention)

from edgeformer_mm.deployment import (ExportGraph, NcnnRunner, convert_to_ncnn,
                                      difference,
                                      with_four_dimensional_attention)

# The peers' smallest models: MultiheadAttention, ChannelMultiheadAttention.
PEERS = ['mobilevit-xsmall_3rdparty_in1k', 'edgenext-xxsmall_3rdparty_in1k']


def largest_traced_rank(model, x):
    """The most dimensions of any tensor in ``model``'s traced graph."""
    with torch.no_grad():
        graph = torch.jit.trace(model, x, check_trace=False).inlined_graph
    return max(value.type().dim() or 0 for node in graph.nodes()
               for value in node.outputs()
               if isinstance(value.type(), torch._C.TensorType))


@pytest.mark.parametrize('name', PEERS)
def test_peer_models_compute_the_same_in_4d(name):
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = torch.rand(1, 3, 64, 64)
    patched = with_four_dimensional_attention(model)
    with torch.no_grad():
        expected, actual = model(x), patched(x)
    assert difference(expected, actual)['rel'] < 1e-6


@pytest.mark.parametrize(
    'attention', [
        MultiheadAttention(16, 1, input_dims=8, v_shortcut=True),
        MultiheadAttention(16, 4, layer_scale_init_value=0.5),
        ChannelMultiheadAttention(16, 1, input_dims=8, v_shortcut=True),
    ],
    ids=['v_shortcut', 'layer_scale', 'channel'])
def test_attention_layers_compute_the_same_in_4d(attention):
    torch.manual_seed(0)
    attention.eval()
    patched = with_four_dimensional_attention(attention)
    x = torch.rand(2, 10, attention.input_dims)
    with torch.no_grad():
        expected, actual = attention(x), patched(x)
    assert difference(expected, actual)['rel'] < 1e-6
    assert largest_traced_rank(attention, x) == 5
    assert largest_traced_rank(patched, x) == 4


def test_models_without_such_attention_are_left_as_they_are():
    model = get_model('edgeformer-xs_8xb128_in1k').eval()
    assert with_four_dimensional_attention(model) is model


@pytest.mark.slow
@pytest.mark.parametrize('name', PEERS)
def test_peer_models_convert_to_ncnn(name, tmp_path):
    pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')
    pytest.importorskip('pnnx', reason='the pnnx converter is not installed')
    model = calibrate(get_model(name))
    files = convert_to_ncnn(model, 'Classification', (64, 64),
                            str(tmp_path / 'end2end'))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = ExportGraph(model, 'Classification')(x)
    actual = NcnnRunner(model, 'Classification', *files)(x)['output']
    assert difference(expected, actual)['rel'] <= 1e-4
