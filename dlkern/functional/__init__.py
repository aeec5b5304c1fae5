"""dlkern's functional API: C kernels behind torch.nn.functional's names and semantics.

Every function here has a pure-NumPy twin with the same name and signature in
dlkern.reference; the two are interchangeable.
"""
from dlkern.functional.batch_norm import batch_norm, batch_norm_backward
from dlkern.functional.softmax import *  # noqa: F401,F403
from dlkern.functional.pooling import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
                                       avg_pool2d, avg_pool2d_backward, max_pool2d,
                                       max_pool2d_backward)
from dlkern.functional.activations import *  # noqa: F401,F403
from dlkern.functional.dropout import *  # noqa: F401,F403
from dlkern.functional.conv2d import conv2d, conv2d_backward
