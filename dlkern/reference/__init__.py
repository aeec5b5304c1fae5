"""Pure-NumPy twins of every dlkern.functional call: same names, same signatures,
same errors. Vectorized as a competent NumPy user would write them, so comparing
the C kernels against them is honest.
"""
from dlkern.reference.batch_norm import batch_norm, batch_norm_backward
from dlkern.reference.softmax import *  # noqa: F401,F403
from dlkern.reference.pooling import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
                                      avg_pool2d, avg_pool2d_backward, max_pool2d,
                                      max_pool2d_backward)
from dlkern.reference.activations import *  # noqa: F401,F403
from dlkern.reference.dropout import *  # noqa: F401,F403
from dlkern.reference.conv2d import conv2d, conv2d_backward
