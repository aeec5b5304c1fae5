"""Training utilities: the fit loop, early stopping, checkpoints and the non-finite guard."""
from dlkern.training.early_stopping import EarlyStopping
from dlkern.training.guard import NonFiniteError
from dlkern.training.history import History
from dlkern.training.loop import evaluate, fit

__all__ = ["fit", "evaluate", "EarlyStopping", "History", "NonFiniteError"]
