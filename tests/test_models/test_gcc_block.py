"""The GCC-CA block against the formula of the official block."""
import torch
import torch.nn.functional as F
from helpers import roll_reference

from edgeformer_mm.models.layers import GCCBlock, resize_meta


def randomize_norms(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def reference_block(block, x):
    """The official forward, written out with roll-based circular convs."""

    def gcc(t, gcc_module):
        n = t.shape[gcc_module.dim]
        return roll_reference(t, resize_meta(gcc_module.meta_kernel, n),
                              gcc_module.dim)

    def add_pe(t, pe_module):
        pe = resize_meta(pe_module.meta_embedding, t.shape[pe_module.dim])
        if pe_module.dim == 2:
            return t + pe[None, :, :, None]
        return t + pe[None, :, None, :]

    def norm(t, bn):
        return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight,
                            bn.bias, eps=bn.eps)

    d = x.shape[1] // 2
    x1, x2 = x[:, :d], x[:, d:]
    b1, b2 = block.branch_hw, block.branch_wh
    # Branch 1: PE(H) -> BN -> GCC along H -> PE(W) -> GCC along W;
    # branch 2 the same with the axes swapped.
    y1 = gcc(add_pe(gcc(norm(add_pe(x1, b1.pe_1), b1.norm), b1.gcc_1),
                    b1.pe_2), b1.gcc_2)
    y2 = gcc(add_pe(gcc(norm(add_pe(x2, b2.pe_1), b2.norm), b2.gcc_1),
                    b2.pe_2), b2.gcc_2)
    assert (b1.gcc_1.direction, b1.pe_1.direction) == ('h', 'h')
    assert (b2.gcc_1.direction, b2.pe_1.direction) == ('w', 'w')
    y = torch.cat([x1 + y1, x2 + y2], dim=1)
    ffn_norm, fc1, _, fc2, _ = block.ffn
    f = fc2(F.hardswish(fc1(norm(y, ffn_norm))))
    ca = block.channel_attention
    gate = f.mean(dim=(2, 3), keepdim=True)
    gate = F.hardswish(norm(ca.squeeze.conv(gate), ca.squeeze.bn))
    gate = F.relu6(norm(ca.excite.conv(gate), ca.excite.bn) + 3) / 6
    return y + f * gate


def test_gcc_block_matches_official_formula():
    torch.manual_seed(0)
    block = GCCBlock(32, 64, meta_kernel_size=8, use_pe=True).double()
    randomize_norms(block)
    block.eval()
    for size in [(8, 8), (5, 11), (1, 1)]:
        x = torch.randn(2, 32, *size, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(block(x), reference_block(block, x))


def test_gcc_block_parameter_count():
    # EdgeFormer-S layer3 (d=96, K=32, ffn=384, r=12): 178,392 with PE and
    # 166,104 without (official figures).
    assert sum(p.numel() for p in GCCBlock(192, 384, 32, True).parameters()) \
        == 178_392
    assert sum(p.numel() for p in GCCBlock(192, 384, 32).parameters()) \
        == 166_104
