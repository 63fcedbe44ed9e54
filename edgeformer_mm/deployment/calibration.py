"""Activation ranges for symmetric int8 post-training quantization.

An :class:`ActivationObserver` accumulates the statistics of one tensor
(e.g. the input of a convolution) over the batches of a calibration set and
gives its *threshold*: the absolute value that int8 maps to 127 (the scale
is ``127 / threshold``; values beyond it are clipped). Three methods:

- ``minmax``: the largest absolute value seen, nothing clipped;
- ``percentile``: a percentile of the absolute values (zeros included), so
  that the rarest outliers are clipped;
- ``entropy``: the threshold of TensorRT's entropy calibration (also
  ncnn's ``ncnn2table method=kl``), the one whose 128-level quantization of
  the histogram of absolute values is closest (Kullback-Leibler divergence)
  to the histogram with the values beyond it clipped to it (see
  :func:`entropy_threshold`). Exact zeros are left out of the histogram,
  as ncnn2table does: those of a ReLU's output would fill its first bin
  whatever the threshold. The threshold is the upper edge of the kept bins
  (ncnn2table adds half a bin, and splits bins between levels where
  TensorRT, and this, keeps them whole: on EdgeFormer-S's layer inputs the
  two thresholds differ by up to a fifth).

Memory stays bounded: the observer keeps a histogram of ``num_bins`` bins
of the non-zero absolute values (plus counts of zeros and values, and the
running maximum), not the values. It is filled in one pass over the
calibration set: the range of the histogram starts at the largest absolute
value of the first batch, and when a later batch goes beyond it, it is
doubled (as often as needed) and adjacent pairs of bins are merged, which
moves no count across a bin edge of the new histogram (the re-binning is
exact). [0, max] is therefore covered by between ``num_bins / 2`` and
``num_bins`` bins (all of them when no batch exceeds the first one's
range, as is usual for a shuffled calibration set); percentiles and
entropy thresholds are resolved to one bin of the histogram.
"""
import numpy as np

CALIBRATION_METHODS = ('minmax', 'percentile', 'entropy')
# int8 quantization levels of one sign: |q| <= 127 plus zero
NUM_LEVELS = 128


class ActivationObserver:
    """Accumulate the statistics of a tensor over calibration batches and
    give the absolute value that int8 quantization maps to 127.

    Args:
        method (str): One of :data:`CALIBRATION_METHODS`.
        percentile (float): For ``percentile``: the percentile (0-100] of
            the absolute values that is the threshold.
        num_bins (int): Bins of the histogram of absolute values
            (``percentile`` and ``entropy``); at least 128 (the int8 levels
            ``entropy`` quantizes the histogram to).
    """

    def __init__(self,
                 method: str,
                 percentile: float = 99.99,
                 num_bins: int = 2048):
        if method not in CALIBRATION_METHODS:
            raise ValueError(f'method must be one of {CALIBRATION_METHODS}, '
                             f'not {method!r}')
        if not 0 < percentile <= 100:
            raise ValueError(f'percentile must be in (0, 100], not '
                             f'{percentile}')
        if num_bins < NUM_LEVELS or num_bins % 2:
            raise ValueError(f'num_bins must be even and at least '
                             f'{NUM_LEVELS}, not {num_bins}')
        self.method = method
        self.percentile = percentile
        self.num_bins = num_bins
        self.count = 0  # values observed, zeros included
        self.zero_count = 0
        self.max_abs = 0.
        # Counts of the non-zero |x| in num_bins equal bins of [0, range]
        # (the last bin closed); range 0 until a non-zero value is seen.
        self.histogram = np.zeros(num_bins, np.int64)
        self.range = 0.

    def observe(self, values: np.ndarray):
        """Add the values of one batch (any shape) to the statistics."""
        values = np.abs(np.asarray(values, np.float32).ravel())
        if not np.isfinite(values).all():
            raise ValueError('cannot calibrate on non-finite values')
        self.count += values.size
        if not values.size:
            return
        batch_max = float(values.max())
        self.max_abs = max(self.max_abs, batch_max)
        if self.method == 'minmax':
            return
        nonzero = values[values > 0]
        self.zero_count += values.size - nonzero.size
        if not nonzero.size:
            return
        if self.range == 0:
            self.range = batch_max
        while batch_max > self.range:
            self._double_range()
        index = (nonzero * (self.num_bins / self.range)).astype(np.int64)
        self.histogram += np.bincount(
            np.minimum(index, self.num_bins - 1), minlength=self.num_bins)

    def _double_range(self):
        """Double the histogram's range: bin pairs merge into the first
        half, the second half is empty."""
        merged = self.histogram.reshape(-1, 2).sum(1)
        self.histogram = np.concatenate(
            [merged, np.zeros(self.num_bins // 2, np.int64)])
        self.range *= 2

    def threshold(self) -> float:
        """The absolute value mapped to 127: 0 when every value observed
        was 0.

        Raises:
            ValueError: Nothing was observed.
        """
        if not self.count:
            raise ValueError(
                f'no values were observed: a {self.method} threshold needs '
                'at least one calibration batch with values')
        if self.method == 'minmax' or self.range == 0:
            return self.max_abs
        bin_width = self.range / self.num_bins
        if self.method == 'percentile':
            threshold = self._percentile_threshold(bin_width)
        else:
            threshold = entropy_threshold(self.histogram) * bin_width
        # a bin's upper edge may lie beyond the largest value
        return min(self.max_abs, threshold)

    def _percentile_threshold(self, bin_width: float) -> float:
        """The percentile of |x|, linearly interpolated in its bin."""
        rank = self.percentile / 100 * self.count - self.zero_count
        if rank <= 0:  # within the zeros
            return 0.
        cumulative = np.cumsum(self.histogram)
        index = min(int(np.searchsorted(cumulative, rank)), self.num_bins - 1)
        below = cumulative[index - 1] if index else 0
        fraction = (rank - below) / self.histogram[index]
        return (index + fraction) * bin_width


def entropy_threshold(histogram: np.ndarray,
                      num_levels: int = NUM_LEVELS) -> int:
    """The number of leading bins of ``histogram`` to keep (the threshold
    is its upper edge) for which quantizing them to ``num_levels`` levels
    loses the least information: TensorRT's entropy calibration.

    For each candidate ``i`` from ``num_levels`` to the last non-empty bin,
    the reference distribution P is the histogram with the counts beyond
    bin ``i`` added to bin ``i - 1`` (clipped to the threshold); the
    candidate Q quantizes the first ``i`` bins to ``num_levels`` levels of
    consecutive bins (sizes ``i / num_levels`` rounded down or up), and
    spreads the count of each level evenly over those of its bins where P
    is non-zero. The threshold is the ``i`` of the smallest KL(P || Q).
    A Q that misses mass of P (a last level without counts below the
    threshold, but values beyond it) is never chosen; keeping every bin
    always has a finite divergence.

    All candidates are evaluated at once from cumulative sums: P and Q
    agree on the shares of all levels but the last, so that
    ``KL = (sum_b P_b log P_b - sum_j P_j log(T_j / M_j)) / N
    - log N + log T``, with ``P_j`` P's count in level ``j``, ``T_j`` the
    count of the first ``i`` bins in it, ``M_j`` its bins where P is not
    zero, ``N`` the total count and ``T`` the count of the first ``i``
    bins.

    Args:
        histogram (np.ndarray): Counts of |x| in equal bins from 0.
        num_levels (int): Quantization levels (128 for int8).

    Returns:
        int: The number of bins below the threshold.
    """
    counts = np.asarray(histogram, np.float64)
    nonzero_bins = np.flatnonzero(counts)
    if not nonzero_bins.size:
        raise ValueError('the histogram is empty')
    end = int(nonzero_bins[-1]) + 1
    if end <= num_levels:  # each bin can have a level of its own
        return end
    counts = counts[:end]
    total = counts.sum()
    cumulative = np.concatenate([[0.], np.cumsum(counts)])
    occupied = np.concatenate([[0], np.cumsum(counts > 0)])
    with np.errstate(divide='ignore', invalid='ignore'):
        entropy_terms = np.where(counts > 0, counts * np.log(counts), 0.)
    cumulative_entropy = np.concatenate([[0.], np.cumsum(entropy_terms)])

    kept = np.arange(num_levels, end + 1)[:, None]  # candidates i
    levels = np.arange(num_levels + 1)[None, :]
    # level j covers the bins [starts[j], starts[j + 1])
    starts = (levels * kept + num_levels - 1) // num_levels
    level_counts = np.diff(cumulative[starts], axis=1)
    level_bins = np.diff(occupied[starts], axis=1)
    # bin i - 1 (the last level) holds the clipped tail: never empty in P
    last = kept[:, 0] - 1
    tail = total - cumulative[last]
    level_bins[:, -1] += 1 - (counts[last] > 0)
    reference_level_counts = level_counts.copy()
    reference_level_counts[:, -1] = total - cumulative[starts[:, -2]]
    reference_entropy = cumulative_entropy[last] + tail * np.log(tail)
    with np.errstate(divide='ignore', invalid='ignore'):
        level_log = np.where(
            reference_level_counts > 0,
            reference_level_counts * np.log(level_counts / level_bins), 0.)
        divergence = ((reference_entropy - level_log.sum(1)) / total -
                      np.log(total) + np.log(cumulative[kept[:, 0]]))
    # -inf/nan from a last level with no count below the threshold: it
    # cannot represent the clipped values
    divergence[~np.isfinite(divergence)] = np.inf
    return int(kept[np.argmin(divergence), 0])
