"""Early stopping on a monitored validation quantity, keeping the best weights."""
import copy
import math


class EarlyStopping:
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs.

    monitor: a history key, e.g. "val_loss" (mode "min") or "val_accuracy" (mode "max").
    restore_best: at the end of training, load the best epoch's weights back into the model.
    """

    def __init__(self, patience=5, monitor="val_loss", mode=None, min_delta=0.0,
                 restore_best=True):
        if int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if mode is None:
            mode = "max" if ("acc" in monitor or "score" in monitor) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.patience = int(patience)
        self.monitor = monitor
        self.mode = mode
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None
        self.best_state = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch, history, model):
        """Record this epoch; return True when training should stop."""
        value = history.last(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: history has no {self.monitor!r}; "
                           f"it has {sorted(history)} (pass validation data to fit)")
        if math.isfinite(value) and self._improved(value):
            self.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def restore(self, model):
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state):
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.wait = state["wait"]
