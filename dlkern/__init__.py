"""dlkern: C-accelerated CPU deep-learning kernels with a drop-in NumPy reference."""
# First: in a portable build this decides which ISA level's compiled modules load.
from dlkern._isa import _select as _select_isa, isa
_select_isa()
del _select_isa

from dlkern._threads import get_num_threads, have_openmp, set_num_threads
from dlkern._threads import _init_from_environment
from dlkern.nn.backend import use_backend
from dlkern.serialization import load, save
from dlkern.summary import summary
from dlkern.training import EarlyStopping, fit
from dlkern import random  # dlkern.random.seed(n): reproducible initialization and dropout

__version__ = "0.1.0"

_init_from_environment()
del _init_from_environment

__all__ = ["get_num_threads", "set_num_threads", "have_openmp", "isa", "__version__",
           "use_backend", "save", "load", "summary", "fit", "EarlyStopping", "random"]
