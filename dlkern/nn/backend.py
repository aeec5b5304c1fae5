"""The backend switch: which functional API every dlkern.nn module calls.

    dlkern.use_backend("reference")          # set globally (process-wide)
    with dlkern.use_backend("reference"):    # or only inside the block, then restore
        out = model(x)

Backends: "c" (alias "functional": dlkern.functional, the C kernels; the default)
and "reference" (alias "numpy": dlkern.reference, the NumPy twins with the same
signatures). Modules look the backend up at every forward and backward call, so a
switch takes effect immediately, even between a forward and its backward.

Threads: the setting is one module-level variable shared by all threads (like
numpy's print options, not thread-local). Setting it is atomic under a lock, but a
`with use_backend(...)` block in one thread also changes what other threads see
until it exits, and nested blocks in different threads restore in whatever order
they exit. Switch backends from one thread, or hold your own lock.
"""
import importlib
import threading

__all__ = ["use_backend", "get_backend", "backend_name"]

_MODULES = {"c": "dlkern.functional", "functional": "dlkern.functional",
            "reference": "dlkern.reference", "numpy": "dlkern.reference"}
_CANONICAL = {"c": "c", "functional": "c", "reference": "reference", "numpy": "reference"}

_lock = threading.Lock()
_current = "c"
_current_module = None  # the imported module of _current, set on first use



def _check(name):
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"use_backend: unknown backend {name!r}; expected one of "
                         f"{sorted(_MODULES)}")
    return _CANONICAL[name]


def backend_name():
    """The current backend's canonical name: "c" or "reference"."""
    return _current


def get_backend():
    """The module (dlkern.functional or dlkern.reference) that modules call now.

    Every module call asks twice (forward and backward), so the module object is kept
    rather than looked up through importlib each time (~4 us a call, measurable at the
    digits CNN's microsecond kernels); use_backend replaces it when it switches."""
    module = _current_module
    if module is None:
        module = _set_current(_current)
    return module


def _set_current(name):
    """Make name (canonical) the current backend; returns its module. Caller may hold
    _lock; the import itself is cached by Python after the first time."""
    global _current, _current_module
    module = importlib.import_module(_MODULES[name])
    _current, _current_module = name, module
    return module


class use_backend:
    """Select the backend: immediately (a plain call sets it globally) and, used as a
    context manager, restore the previous one on exit (also on an exception).

    Unknown names raise ValueError before anything changes.
    """

    def __init__(self, name):
        name = _check(name)
        importlib.import_module(_MODULES[name])  # fail here, not mid-forward
        with _lock:
            self.previous = _current
            _set_current(name)
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with _lock:
            _set_current(self.previous)
        return False

    def __repr__(self):
        return f"use_backend({self.name!r})"
