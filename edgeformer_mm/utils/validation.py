"""Argument checks with messages that say what was expected."""


def check_positive_int(value, name: str):
    """Raise a ValueError naming ``name`` unless ``value`` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
