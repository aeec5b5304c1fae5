"""Pure-NumPy twins of every dlkern.functional call: same names, same signatures,
same errors. Vectorized as a competent NumPy user would write them, so comparing
the C kernels against them is honest.
"""
from dlkern.reference.batch_norm import batch_norm, batch_norm_backward
from dlkern.reference.softmax import *  # noqa: F401,F403
