"""Pure-NumPy twins of every dlkern.functional call: same names, same signatures,
same errors. Vectorized as a competent NumPy user would write them, so comparing
the C kernels against them is honest.
"""
from dlkern.reference.activations import *  # noqa: F401,F403
from dlkern.reference.dropout import *  # noqa: F401,F403
