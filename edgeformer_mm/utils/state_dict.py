"""Comparing a state dict with the one a model expects.

The backbone's strict pretrained loading, the deploy tool's checkpoint check
and the official-checkpoint converter refuse a state dict that does not fit
their model, and say why in the same words: :func:`compare_state_dicts`.
"""
from dataclasses import dataclass, field
from typing import List, Mapping, Sequence, Tuple

from torch import Tensor


@dataclass
class StateDictMismatch:
    """What separates a given state dict from an expected one.

    Args:
        reshaped: ``(key, given shape, expected shape)`` of each key that
            both have with different shapes.
        missing: keys expected but not given.
        unexpected: keys given but not expected.
    """
    reshaped: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reshaped or self.missing or self.unexpected)

    def counts(self) -> str:
        return (f'{len(self.reshaped)} weights of another shape, '
                f'{len(self.missing)} missing, {len(self.unexpected)} '
                'unexpected')

    def listing(self, limit: int = 20) -> str:
        """One indented line a key, at most ``limit`` of them."""
        lines = [
            f'shape {given} for {key}, expected {expected}'
            for key, given, expected in self.reshaped
        ]
        lines += [f'missing: {key}' for key in self.missing]
        lines += [f'unexpected: {key}' for key in self.unexpected]
        more = len(lines) - limit
        return ''.join(f'\n  {line}' for line in lines[:limit]) + (
            f'\n  ... and {more} more' if more > 0 else '')

    def report(self, limit: int = 20) -> str:
        """The counts, then the listing."""
        return self.counts() + ':' + self.listing(limit)


def compare_state_dicts(
        given: Mapping[str, Tensor],
        expected: Mapping[str, Tensor],
        ignored_prefixes: Sequence[str] = ()) -> StateDictMismatch:
    """Keys of ``given`` that do not fit ``expected``, by shape and name.

    Args:
        given: the state dict to check, e.g. read from a checkpoint.
        expected: the model's own state dict.
        ignored_prefixes: unexpected keys starting with one of these are
            not reported (weights of parts the model leaves out on purpose).
    """
    return StateDictMismatch(
        reshaped=[(key, tuple(given[key].shape), tuple(value.shape))
                  for key, value in expected.items()
                  if key in given and given[key].shape != value.shape],
        missing=[key for key in expected if key not in given],
        unexpected=[
            key for key in given
            if key not in expected and not key.startswith(
                tuple(ignored_prefixes))
        ])
