"""dlkern's functional API: C kernels behind torch.nn.functional's names and semantics.

Every function here has a pure-NumPy twin with the same name and signature in
dlkern.reference; the two are interchangeable.
"""
from dlkern.functional.causal_conv1d import causal_conv1d, causal_conv1d_backward
from dlkern.functional.linear import linear, linear_backward
