"""Convert an official EdgeFormer checkpoint (hkzhang91/EdgeFormer, ml-cvnets
key names) into one that loads strictly into this package's configs.

Examples:
    python tools/model_converters/edgeformer_official_to_mm.py \\
        pretrained_models/classification/checkpoint_ema_avg.pt \\
        checkpoints/edgeformer-s_official_in1k.pth
    python tools/model_converters/edgeformer_official_to_mm.py \\
        pretrained_models/detection/checkpoint_ema_avg.pt \\
        checkpoints/ssdlite_edgeformer_s_official_coco.pth --task det

The target model is built from --config, by default the task's config:
classification configs/mmpretrain/edgeformer/edgeformer-{xs,s,h}_8xb128_in1k.py
(the arch read from the weights), detection
configs/mmdet/ssdlite_edgeformer_s_coco.py, segmentation
configs/mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py. Every official
key must find its place and every weight of the target must be filled, or
nothing is written and the error lists the keys that do not fit.

The converted models compute what the official ones compute, with the same
input convention (BGR in [0, 1], no mean/std): the GCC meta kernels and
positional embeddings are reshaped to (C, K); the 18 'residual.*' keys (an
alias of layer_5.0) are dropped; the SSD predictors are rearranged for
mmdet's head (one official depthwise conv copied into mmdet's separate class
and box branches; the fused 1x1 conv split into box deltas and class scores,
background moved from first to last). Two things differ from the official
detector, both outside the weights: mmdet does not clip prior sizes to the
image (18 of the 3232 priors at 320), and it runs NMS per class.
"""
import argparse
import os
import os.path as osp
import sys

import torch

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.utils import build_model
from edgeformer_mm.converters.official_checkpoint import (
    TASKS, ConversionError, convert_official_state_dict, guess_task,
    read_official_checkpoint)

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'configs')
DEFAULT_CONFIGS = dict(
    cls='mmpretrain/edgeformer/edgeformer-{arch}_8xb128_in1k.py',
    det='mmdet/ssdlite_edgeformer_s_coco.py',
    seg='mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py')


def classification_arch(state_dict) -> str:
    """'xs', 's' or 'h' from the stem and the first ParC stage's width."""
    stem = state_dict.get('conv_1.block.conv.weight')
    if stem is not None and stem.shape[0] == 48:
        return 'h'
    parc = state_dict.get('layer_3.1.dim_adaptive.1.block.conv.weight')
    return 'xs' if parc is not None and parc.shape[0] == 96 else 's'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('src', help='official checkpoint (.pt)')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument(
        '--task',
        choices=TASKS + ('auto', ),
        default='auto',
        help='cls, det or seg; auto reads it from the keys (default)')
    parser.add_argument(
        '--config', help='config of the target model (default: see above)')
    parser.add_argument(
        '--ema',
        action='store_true',
        help='from a training checkpoint, take ema_state_dict instead of '
        'model_state_dict')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        state_dict = read_official_checkpoint(args.src, use_ema=args.ema)
        task = guess_task(state_dict) if args.task == 'auto' else args.task
        config = args.config or osp.join(
            CONFIGS, DEFAULT_CONFIGS[task].format(
                arch=classification_arch(state_dict)))
        model = build_model(config)
        converted = convert_official_state_dict(state_dict, task,
                                                model.state_dict())
    except (ConversionError, FileNotFoundError) as error:
        sys.exit(f'error: {error}\nNothing was written.')
    model.load_state_dict(converted, strict=True)

    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    # Written next to the destination, then renamed: never a partial file.
    partial = args.dst + '.partial'
    torch.save(
        dict(
            meta=dict(
                converted_from=osp.abspath(args.src),
                task=task,
                config=osp.relpath(config, osp.join(CONFIGS, '..'))),
            state_dict=converted), partial)
    os.replace(partial, args.dst)
    print(f'{args.src}: official {task} checkpoint, '
          f'{len(state_dict)} keys -> {len(converted)} keys of '
          f'{osp.relpath(config)}\nwrote {args.dst}')


if __name__ == '__main__':
    main()
