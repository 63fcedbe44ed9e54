"""Deploy mode: GCC branches and blocks baked for one input size
(re-parameterised), BatchNorms folded."""
import copy

import pytest
import torch

from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.models.layers import (AxialPositionalEmbedding, GCCBlock,
                                         GCCBranch, GlobalCircularConv,
                                         global_circular_conv)
from edgeformer_mm.models.layers.reparam import fold_norm_into_conv


def relative_error(out, ref):
    return ((out - ref).abs().max() / ref.abs().max()).item()


def randomise_norm(norm, seed):
    gen = torch.Generator().manual_seed(seed)
    channels = norm.num_features
    norm.running_mean.copy_(torch.randn(channels, generator=gen))
    norm.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    norm.weight.data.copy_(torch.randn(channels, generator=gen))
    norm.bias.data.copy_(torch.randn(channels, generator=gen))


@pytest.mark.parametrize('first_direction', ['h', 'w'])
@pytest.mark.parametrize('use_pe', [True, False])
@pytest.mark.parametrize('size', [(7, 7), (5, 11), (12, 3), (1, 6)])
def test_baked_branch_equals_the_original(first_direction, use_pe, size):
    torch.manual_seed(0)
    branch = GCCBranch(6, 8, first_direction, use_pe)
    randomise_norm(branch.norm, seed=1)
    branch.eval()
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        ref = branch(x)
        kernel_1, kernel_2, bias = branch.baked(*size)
        out = global_circular_conv(
            global_circular_conv(x, kernel_1, branch.dims[0]), kernel_2,
            branch.dims[1]) + bias
    assert relative_error(out, ref) < 1e-5
    lengths = size if first_direction == 'h' else size[::-1]
    assert kernel_1.shape == (6, lengths[0])
    assert kernel_2.shape == (6, lengths[1])
    # Embeddings vary over the map; without them the bias is per channel.
    assert bias.shape == ((1, 6) + size if use_pe else (1, 6, 1, 1))


def test_branch_needs_a_batch_norm():
    branch = GCCBranch(4, 8, 'h', True, norm_cfg=dict(type='GN', num_groups=2))
    with pytest.raises(TypeError, match='folds a BatchNorm'):
        branch.baked(8, 8)


@pytest.mark.parametrize('use_pe', [True, False])
@pytest.mark.parametrize('size', [(7, 7), (5, 11), (12, 3), (1, 6)])
def test_block_equals_the_original(use_pe, size):
    torch.manual_seed(0)
    block = GCCBlock(32, 16, 8, use_pe)
    for seed, norm in enumerate(m for m in block.modules()
                                if isinstance(m, torch.nn.BatchNorm2d)):
        randomise_norm(norm, seed)
    block.eval()
    x = torch.randn(2, 32, *size)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy(*size)
        out = block(x)
    assert relative_error(out, ref) < 1e-5
    # One pair of matrix products over all channels, no branches, no split.
    assert not hasattr(block, 'branch_hw') and not hasattr(block, 'branch_wh')
    assert block.deploy_vertical.shape == (32, size[0], size[0])
    assert block.deploy_horizontal.shape == (32, size[1], size[1])
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in block.ffn.modules())
    with pytest.raises(ValueError, match='deploy mode for'):
        block(torch.randn(1, 32, size[0] + 1, size[1]))


@pytest.mark.parametrize('batch', [1, 3])
def test_block_products_equal_the_broadcasting_ones(batch):
    """A single image goes through 3-D batched products (no expanded
    copies in torch.export), bit for bit the broadcasting 4-D ones."""
    torch.manual_seed(0)
    block = GCCBlock(32, 16, 8, True).eval()
    block.switch_to_deploy(12, 9)
    x = torch.randn(batch, 32, 12, 9)
    with torch.no_grad():
        expected = torch.matmul(
            torch.matmul(block.deploy_vertical[None], x),
            block.deploy_horizontal[None])
        assert torch.equal(block.deploy_mix(x), expected)
    if batch == 1:
        program = torch.export.export(block, (x, ))
        targets = {str(node.target) for node in program.graph.nodes}
        assert 'aten.bmm.default' in targets
        assert not any('matmul' in t or 'expand' in t for t in targets)


@pytest.mark.parametrize('groups', [1, 2, 4])
def test_fold_norm_into_the_next_1x1_conv(groups):
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(8)
    randomise_norm(norm, seed=3)
    conv = torch.nn.Conv2d(8, 4, 1, groups=groups, bias=groups != 2)
    norm.eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        ref = conv(norm(x))
        fold_norm_into_conv(norm, conv)
        assert relative_error(conv(x), ref) < 1e-6
    with pytest.raises(ValueError, match='1x1'):
        fold_norm_into_conv(norm, torch.nn.Conv2d(8, 4, 3))


@pytest.fixture(scope='module')
def calibrated():
    """EdgeFormer-S with BN statistics from a few training batches, so that
    its outputs depend on the input."""
    torch.manual_seed(0)
    model = EdgeFormer('s', out_indices=(3, 4, 5))
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 96, 128))
    return model.eval()


@pytest.mark.parametrize('size', [(256, 256), (224, 320), (320, 256)])
def test_backbone_equals_the_original(calibrated, size):
    x = torch.rand(1, 3, *size)
    deployed = copy.deepcopy(calibrated)
    deployed.switch_to_deploy(size)
    with torch.no_grad():
        refs = calibrated(x)
        outs = deployed(x)
    for out, ref in zip(outs, refs):
        assert relative_error(out, ref) < 1e-5
    assert deployed.deployed_size == size
    # No meta kernel or embedding is left, so no interpolation or PE add,
    # and every BatchNorm is folded.
    assert not any(
        isinstance(m, (GlobalCircularConv, AxialPositionalEmbedding,
                       torch.nn.BatchNorm2d)) for m in deployed.modules())
    # The graphs are only read (check_trace would run each model twice
    # more).
    graph = str(torch.jit.trace(deployed, x, check_trace=False).inlined_graph)
    assert 'upsample' not in graph and 'interpolate' not in graph
    # Traced without deploy mode, the kernels are resized in the graph
    # (even at 256, where the maps have the meta sizes).
    assert 'upsample_linear1d' in str(
        torch.jit.trace(calibrated, x, check_trace=False).inlined_graph)


def test_deployed_backbone_cannot_train(calibrated):
    deployed = copy.deepcopy(calibrated)
    deployed.switch_to_deploy((128, 128))
    with pytest.raises(RuntimeError, match='deploy mode .* cannot be trained'):
        deployed.train()
    with pytest.raises(ValueError, match='deploy mode for 16x16'):
        with torch.no_grad():
            deployed(torch.rand(1, 3, 160, 160))


def test_deploy_input_size_is_the_default(calibrated):
    """mmdeploy calls switch_to_deploy() without arguments."""
    deployed = copy.deepcopy(calibrated)
    deployed.switch_to_deploy()
    assert deployed.deployed_size is None  # nothing to bake for
    deployed.deploy_input_size = (96, 64)
    deployed.switch_to_deploy()
    assert deployed.deployed_size == (96, 64)
