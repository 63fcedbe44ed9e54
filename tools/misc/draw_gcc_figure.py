"""Draw the figure that explains the global circular convolution (GCC).

Four panels, drawn from scratch with matplotlib (nothing is copied from the
paper):

(a) a GCC along one axis: the kernel is as long as the axis and its window
    wraps around, ``y[i] = sum_j k[j] * x[(i + j) mod n]``; in the code the
    wrap is the first n - 1 positions appended (a slice, then a plain
    convolution);
(b) the meta kernel: learned at a fixed length K and resized to the map's
    length n by 1-D linear interpolation (``align_corners=True``), so one
    model runs at any input size;
(c) a vertical GCC followed by a horizontal one gives every output position
    the whole map as its receptive field;
(d) the GCC-CA block of EdgeFormer, with its two branches.

Example:
    python tools/misc/draw_gcc_figure.py --out docs/images/gcc.png
"""
import argparse
import os
import os.path as osp

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

INPUT = '#dbe9f6'
WRAP = '#f3e0c0'
WINDOW = '#2b6cb0'
KERNEL = '#c05621'
OUTPUT = '#2f855a'
GREY = '#4a5568'


def cell(ax, x, y, text, face, edge='black', size=1.0, bold=False, lw=1.0,
         fontsize=11):
    ax.add_patch(Rectangle((x, y), size, size, facecolor=face, edgecolor=edge,
                           linewidth=lw))
    ax.text(x + size / 2, y + size / 2, text, ha='center', va='center',
            fontsize=fontsize, fontweight='bold' if bold else 'normal')


def arrow(ax, start, end, color='black', lw=1.4, style='-|>', **kwargs):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style,
                                 mutation_scale=14, color=color, lw=lw,
                                 shrinkA=0, shrinkB=0, **kwargs))


def panel_title(ax, text):
    ax.set_title(text, loc='left', fontsize=13, fontweight='bold', pad=8)


def draw_wrap_around(ax, n=8, i=5):
    """(a) GCC along one axis of length n, output position i."""
    panel_title(ax, '(a) A GCC along one axis: the kernel spans the axis '
                'and wraps around')
    # Input row, then its first n - 1 positions appended.
    y_in = 4.2
    ax.text(-0.4, y_in + 0.5, 'x', ha='right', va='center', fontsize=13,
            fontstyle='italic')
    for p in range(n):
        cell(ax, p, y_in, f'$x_{p}$', INPUT)
    for p in range(n - 1):
        cell(ax, n + p, y_in, f'$x_{p}$', WRAP, edge=GREY)
    ax.annotate('', xy=(n, y_in + 1.35), xytext=(2 * n - 1, y_in + 1.35),
                arrowprops=dict(arrowstyle='-', color=GREY, lw=1))
    ax.text(n + (n - 1) / 2, y_in + 1.6,
            f'first n - 1 = {n - 1} positions appended (circular padding)',
            ha='center', va='bottom', fontsize=10, color=GREY)
    ax.text(n / 2, y_in + 1.6, f'feature map row, n = {n}', ha='center',
            va='bottom', fontsize=10, color=GREY)
    # The window of output i: n positions starting at i, wrapping around.
    ax.add_patch(Rectangle((i - 0.08, y_in - 0.08), n + 0.16, 1.16,
                           fill=False, edgecolor=WINDOW, lw=2.6))
    # Kernel under the window.
    y_k = 2.5
    ax.text(-0.4, y_k + 0.5, 'k', ha='right', va='center', fontsize=13,
            fontstyle='italic')
    for j in range(n):
        cell(ax, i + j, y_k, f'$k_{j}$', '#fbd3b4', edge=KERNEL)
    ax.text(i - 0.3, y_k + 0.5, 'kernel, as long as the axis,\n'
            f'under the window of $y_{i}$:\n'
            f'n positions from i = {i}, wrapping\n'
            f'around to $x_{(i + n - 1) % n}$', ha='right', va='center',
            fontsize=10, color=KERNEL)
    # Output row.
    y_out = 0.4
    ax.text(-0.4, y_out + 0.5, 'y', ha='right', va='center', fontsize=13,
            fontstyle='italic')
    for p in range(n):
        highlight = p == i
        cell(ax, p, y_out, f'$y_{p}$', '#c6f6d5' if highlight else 'white',
             edge=OUTPUT if highlight else GREY, lw=2.2 if highlight else 1,
             bold=highlight)
    arrow(ax, (i + n / 2, y_k - 0.05), (i + 0.6, y_out + 1.05), color=OUTPUT,
          lw=1.8, connectionstyle='arc3,rad=-0.15')
    wrapped = ' + '.join(
        f'k_{j} x_{(i + j) % n}' for j in (0, 1, 2)) + r' + \cdots + ' + \
        f'k_{n - 1} x_{(i + n - 1) % n}'
    ax.text(n + 0.2, y_out + 0.5, f'$y_{i} = {wrapped}$', ha='left',
            va='center', fontsize=11, color=OUTPUT)
    ax.text(0, -0.9,
            r'$y_i = \sum_{j=0}^{n-1} k_j\, x_{(i+j)\ \mathrm{mod}\ n}$   '
            'for every i: each output sees the whole row, '
            'at the cost of a depthwise convolution',
            ha='left', va='center', fontsize=11.5)
    ax.set_xlim(-1.6, 2 * n)
    ax.set_ylim(-1.5, 6.4)
    ax.set_aspect('equal')
    ax.axis('off')


def draw_meta_kernel(ax, meta=7, sizes=(4, 16)):
    """(b) a meta kernel of length K resized to two instance lengths."""
    panel_title(ax, '(b) Meta kernel, resized to the map')
    rng = np.random.default_rng(3)
    kernel = np.cumsum(rng.normal(0, 0.6, meta))
    kernel -= kernel.mean()
    grid = np.linspace(0, 1, meta)
    ax.plot(grid, kernel, '-', color=KERNEL, lw=1, alpha=0.5)
    ax.plot(grid, kernel, 'o', color=KERNEL, ms=11,
            label=f'meta kernel, K = {meta} (learned)')
    styles = [('s', '#805ad5', 10), ('.', '#2b6cb0', 9)]
    for n, (marker, color, size) in zip(sizes, styles):
        positions = np.linspace(0, 1, n)  # align_corners=True
        ax.plot(positions, np.interp(positions, grid, kernel), marker,
                color=color, ms=size, ls='none', zorder=3 if n < meta else 2,
                label=f'instance kernel for a map of length n = {n}')
    ax.set_xticks([0, 1])
    ax.set_xticklabels(['first tap', 'last tap'])
    ax.set_yticks([])
    ax.set_ylabel('weight')
    ax.legend(loc='lower center', fontsize=10, frameon=False,
              bbox_to_anchor=(0.5, -0.42), ncol=1)
    for side in ('top', 'right'):
        ax.spines[side].set_visible(False)
    ax.text(0.5, 1.0, '1-D linear interpolation (align_corners=True);\n'
            'positional embeddings are resized the same way',
            transform=ax.transAxes, ha='center', va='top', fontsize=10,
            color=GREY)


def draw_receptive_field(ax, rows=6, cols=6, r=1, c=4):
    """(c) vertical GCC, then horizontal GCC: a global receptive field."""
    panel_title(ax, '(c) Vertical, then horizontal: the whole map')
    gap = 2.6

    def grid(x0, shaded):
        for rr in range(rows):
            for cc in range(cols):
                ax.add_patch(Rectangle(
                    (x0 + cc, rows - 1 - rr), 1, 1,
                    facecolor=INPUT if shaded(rr, cc) else 'white',
                    edgecolor=GREY, lw=0.8))

    # Left: after the vertical GCC, output (r, c) has seen column c.
    grid(0, lambda rr, cc: cc == c)
    ax.add_patch(Rectangle((c, 0), 1, rows, fill=False, edgecolor=WINDOW,
                           lw=2.4))
    ax.plot(c + 0.5, rows - 1 - r + 0.5, '*', color=OUTPUT, ms=16)
    ax.text(cols / 2, -0.7, 'vertical GCC (H x 1 kernel):\n'
            'a position sees its column', ha='center', va='top', fontsize=10)
    # Right: after the horizontal GCC, it has seen row r of that map, each
    # position of which saw its column: the whole map.
    x0 = cols + gap
    grid(x0, lambda rr, cc: True)
    ax.add_patch(Rectangle((x0, rows - 1 - r), cols, 1, fill=False,
                           edgecolor=KERNEL, lw=2.4))
    ax.plot(x0 + c + 0.5, rows - 1 - r + 0.5, '*', color=OUTPUT, ms=16)
    ax.text(x0 + cols / 2, -0.7, 'then horizontal GCC (1 x W):\n'
            'its row, each of which saw a column', ha='center', va='top',
            fontsize=10)
    arrow(ax, (cols + 0.4, rows / 2), (cols + gap - 0.4, rows / 2), lw=2)
    ax.text(cols + gap / 2, -2.5, 'star: one output position; shaded: '
            'the inputs it depends on', ha='center', va='top', fontsize=10,
            color=GREY)
    ax.set_xlim(-0.3, 2 * cols + gap + 0.3)
    ax.set_ylim(-3.3, rows + 0.3)
    ax.set_aspect('equal')
    ax.axis('off')


def box(ax, x, y, w, h, text, face='white', edge='black', fontsize=10.5):
    ax.add_patch(Rectangle((x, y), w, h, facecolor=face, edgecolor=edge,
                           lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha='center', va='center',
            fontsize=fontsize)


def draw_block(ax):
    """(d) the GCC-CA block."""
    panel_title(ax, '(d) GCC-CA block of EdgeFormer (channels split in '
                'two halves)')
    h = 0.8
    # Input and split.
    box(ax, 0, 2.1, 1.3, h, 'x\n(C ch.)', face=INPUT)
    arrow(ax, (1.3, 2.5), (1.9, 2.5))
    box(ax, 1.9, 2.1, 1.0, h, 'split')
    ops = [('PE', '#edf2f7'), ('BN', '#edf2f7'), ('GCC', '#fbd3b4'),
           ('PE', '#edf2f7'), ('GCC', '#fbd3b4')]
    for y, first, second in ((3.9, 'H', 'W'), (0.3, 'W', 'H')):
        top = y > 2
        ymid = y + h / 2
        arrow(ax, (2.9, 2.5), (3.5, ymid))
        x = 3.5
        axes = [first, first, first, second, second]
        for index, ((name, face), axis) in enumerate(zip(ops, axes)):
            label = name if name == 'BN' else f'{name}$_{axis}$'
            w = 1.25 if name == 'GCC' else 1.0
            box(ax, x, y, w, h, label, face=face,
                edge=KERNEL if name == 'GCC' else 'black')
            if index < len(ops) - 1:
                arrow(ax, (x + w, ymid), (x + w + 0.35, ymid))
            x += w + 0.35
        add = x + 0.1  # centre of the residual's "+"
        ax.plot([x - 0.35, add - 0.15], [ymid, ymid], color='black', lw=1.4)
        ax.add_patch(plt.Circle((add, ymid), 0.15, fill=False, lw=1.2))
        ax.text(add, ymid, '+', ha='center', va='center', fontsize=10)
        # The residual: from the branch input around the branch to the "+".
        loop = y + h + 0.35 if top else y - 0.35
        ax.plot([3.2, 3.2, add], [ymid, loop, loop], color=GREY, lw=1)
        arrow(ax, (add, loop), (add, ymid + (0.15 if top else -0.15)),
              color=GREY, lw=1)
        arrow(ax, (add + 0.15, ymid), (10.7, 2.5 + (0.25 if top else -0.25)))
        ax.text(3.5, loop + (0.1 if top else -0.1),
                'vertical first' if first == 'H' else 'horizontal first',
                ha='left', va='bottom' if top else 'top', fontsize=10,
                color=GREY)
    box(ax, 10.7, 2.1, 0.9, h, 'concat')
    arrow(ax, (11.6, 2.5), (12.1, 2.5))
    box(ax, 12.1, 2.1, 2.0, h, 'FFN $f$: BN, 1x1,\nHSwish, 1x1',
        fontsize=9.5)
    arrow(ax, (14.1, 2.5), (14.6, 2.5))
    box(ax, 14.6, 2.1, 1.6, h, '$f \\cdot$ CA($f$)\nch. attention',
        fontsize=9.5)
    arrow(ax, (16.2, 2.5), (16.5, 2.5))
    ax.add_patch(plt.Circle((16.65, 2.5), 0.15, fill=False, lw=1.2))
    ax.text(16.65, 2.5, '+', ha='center', va='center', fontsize=10)
    ax.plot([11.85, 11.85, 16.65], [2.5, 1.55, 1.55], color=GREY, lw=1)
    arrow(ax, (16.65, 1.55), (16.65, 2.35), color=GREY, lw=1)
    arrow(ax, (16.8, 2.5), (17.3, 2.5))
    ax.text(17.4, 2.5, 'out', ha='left', va='center', fontsize=11)
    ax.text(0, -0.9,
            'GCC$_H$: vertical GCC, GCC$_W$: horizontal GCC. PE$_H$ / '
            'PE$_W$: learned positional embeddings that vary along\n'
            'the axis of the GCC that follows (first block of a stage '
            'only). Deploy mode bakes both branches for one input\n'
            'size into $y = x + V\\,x\\,H + b$ (per-channel circulant '
            'matrices $V$, $H$; BatchNorm and embeddings folded in).',
            ha='left', va='top', fontsize=10, color=GREY)
    ax.set_xlim(-0.2, 18.2)
    ax.set_ylim(-2.0, 5.7)
    ax.set_aspect('equal')
    ax.axis('off')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='docs/images/gcc.png')
    parser.add_argument('--dpi', type=int, default=110)
    args = parser.parse_args()

    fig = plt.figure(figsize=(16, 10))
    draw_wrap_around(fig.add_axes([0.01, 0.52, 0.62, 0.44]))
    draw_meta_kernel(fig.add_axes([0.69, 0.64, 0.28, 0.28]))
    draw_receptive_field(fig.add_axes([0.01, 0.04, 0.30, 0.44]))
    draw_block(fig.add_axes([0.33, 0.04, 0.66, 0.44]))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi, facecolor='white')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
