"""Value checks shared by the settings (configurator.py), the arms' controls (arms.py) and the
checkpoint reader: `True` is an int to Python, never a count or a step here."""

import math


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_positive(v):
    """A finite number > 0."""
    return is_number(v) and 0 < v < math.inf
