"""compare_state_dicts: the one comparison behind every strict load."""
import torch

from edgeformer_mm.utils.state_dict import compare_state_dicts


def test_reports_reshaped_missing_and_unexpected_keys():
    expected = dict(a=torch.zeros(2, 3), b=torch.zeros(4), c=torch.zeros(1))
    given = dict(a=torch.zeros(3, 2), b=torch.zeros(4), d=torch.zeros(1),
                 skipped_x=torch.zeros(1))
    mismatch = compare_state_dicts(given, expected, ignored_prefixes=['skip'])
    assert mismatch.reshaped == [('a', (3, 2), (2, 3))]
    assert mismatch.missing == ['c']
    assert mismatch.unexpected == ['d']
    assert mismatch.report() == (
        '1 weights of another shape, 1 missing, 1 unexpected:\n'
        '  shape (3, 2) for a, expected (2, 3)\n  missing: c\n'
        '  unexpected: d')


def test_equal_state_dicts_match():
    state_dict = dict(a=torch.zeros(2), b=torch.ones(3))
    assert not compare_state_dicts(state_dict, dict(state_dict))


def test_listing_is_cut_at_the_limit():
    expected = {f'k{i}': torch.zeros(1) for i in range(5)}
    listing = compare_state_dicts({}, expected).listing(limit=2)
    assert listing == '\n  missing: k0\n  missing: k1\n  ... and 3 more'
