"""Analysis: the speed benchmark of EdgeFormer next to MobileViT and
EdgeNeXt, and of the ParC ConvNets next to their plain counterparts (see
tools/analysis/benchmark.py); int8 against fp32 (:mod:`.int8`, see
tools/analysis/int8_accuracy.py)."""
from .benchmark import (BENCHMARK_BACKENDS, BENCHMARK_MODELS,
                        EDGEFORMER_COMPARISON, OTHER_BACKENDS, PARC_PAIRS,
                        run_benchmark)
from .report import markdown_report, write_report

__all__ = [
    'BENCHMARK_BACKENDS', 'BENCHMARK_MODELS', 'EDGEFORMER_COMPARISON',
    'OTHER_BACKENDS', 'PARC_PAIRS', 'markdown_report', 'run_benchmark',
    'write_report'
]
