"""fit: the training loop over dlkern modules, losses and optimizers.

One step is forward, loss, backward, (clip), optimizer step, as in PyTorch. Each
epoch ends with validation, history, scheduler and early-stopping updates and an
atomic checkpoint; the non-finite guard runs every step (see guard.py).
"""
import math
import os
import time

import numpy as np

import dlkern.random
from dlkern.nn.module import run_backward
from dlkern.nn.utils import clip_grad_norm_
from dlkern.optim.lr_scheduler import ReduceLROnPlateau
from dlkern.training.checkpoint import load_checkpoint, save_checkpoint
from dlkern.training.guard import NonFiniteError, all_finite, check_gradients, diagnose_loss
from dlkern.training.history import History
from dlkern.training.progress import Progress


def accuracy(output, target):
    """Fraction of rows whose arg-max equals the integer target."""
    return float(np.mean(np.argmax(output, axis=1) == target))


_METRICS = {"accuracy": accuracy}


def _metric(metric):
    """(name, function) of a metric argument; (None, None) for no metric."""
    if metric is None:
        return None, None
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    if metric not in _METRICS:
        raise ValueError(f"fit: unknown metric {metric!r}; use one of {sorted(_METRICS)}, "
                         f"a callable(output, target) -> float, or None")
    return metric, _METRICS[metric]


def _batches(data, batch_size):
    """Batches of a loader (anything iterable over (x, y)) or of an (x, y) tuple."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
    else:
        yield from data


def evaluate(model, loss_fn, data, metric="accuracy", batch_size=256):
    """Mean loss (and metric, if any) of model over data, in eval mode, no gradients.

    Returns {"loss": float, "<metric name>": float}. The model's train/eval mode is
    restored afterwards."""
    metric_name, metric_fn = _metric(metric)
    was_training = model.training
    model.eval()
    total_loss = total_metric = 0.0
    count = 0
    try:
        for xb, yb in _batches(data, batch_size):
            out = model(xb)
            n = len(xb)
            total_loss += float(loss_fn(out, yb)) * n
            if metric_fn is not None:
                total_metric += metric_fn(out, yb) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the data holds no samples")
    result = {"loss": total_loss / count}
    if metric_fn is not None:
        result[metric_name] = total_metric / count
    return result


def _current_lr(optimizer):
    return float(optimizer.param_groups[0]["lr"])


def fit(model, loss_fn, optimizer, train_data, val_data=None, epochs=10, *, metric="accuracy",
        scheduler=None, early_stopping=None, checkpoint_dir=None, resume=False,
        clip_grad_norm=None, guard=True, progress=True, log=print, batch_size=256):
    """Train model for `epochs` epochs and return its History.

    train_data: an iterable of (x, y) batches re-iterated every epoch; for a
        dlkern.data.DataLoader the loop sets its epoch, so shuffling is a function of
        (seed, epoch) and a resumed run sees the same batches as an uninterrupted one.
    val_data: the same, or an (x, y) tuple evaluated in batches of batch_size.
    metric: "accuracy", None (regression), or callable(output, target) -> float.
    scheduler: stepped once per epoch (ReduceLROnPlateau gets the validation loss).
    early_stopping: an EarlyStopping, updated after each validation.
    checkpoint_dir: after each epoch, last.npz (model, optimizer, loop state) is
        written atomically there, and best.npz whenever validation loss improves.
    resume: continue from checkpoint_dir/last.npz if it exists.
    clip_grad_norm: max global gradient norm (None: no clipping).
    guard: raise NonFiniteError naming the first module where NaN/Inf appeared.
    """
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    metric_name, metric_fn = _metric(metric)
    history = History()
    start_epoch = 1
    last_path = best_path = None
    best_val = math.inf
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        last_path = os.path.join(checkpoint_dir, "last.npz")
        best_path = os.path.join(checkpoint_dir, "best.npz")
        if resume and os.path.exists(last_path):
            meta = load_checkpoint(last_path, model, optimizer)
            start_epoch = meta["epoch"] + 1
            history.update(meta["history"])
            best_val = meta.get("best_val", math.inf)
            if scheduler is not None and meta.get("scheduler") is not None:
                scheduler.load_state_dict(meta["scheduler"])
            if early_stopping is not None and meta.get("early_stopping") is not None:
                early_stopping.load_state_dict(meta["early_stopping"])
            # dropout and other layers draw from dlkern's default generator: resume it too
            dlkern.random.default_rng().bit_generator.state = meta["rng_state"]
            log(f"resumed from {last_path} after epoch {meta['epoch']}")

    def kept_checkpoint():
        return last_path if last_path and os.path.exists(last_path) else None

    n_batches = len(train_data) if hasattr(train_data, "__len__") else None
    for epoch in range(start_epoch, int(epochs) + 1):
        if hasattr(train_data, "epoch"):
            train_data.epoch = epoch - 1  # DataLoader counts epochs from 0
        model.train()
        bar = Progress(n_batches or 0, prefix=f"epoch {epoch}/{epochs}",
                       enabled=progress and n_batches is not None)
        t0 = time.perf_counter()
        total_loss = total_metric = 0.0
        seen = 0
        for step, (xb, yb) in enumerate(train_data, start=1):
            optimizer.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            if guard and not all_finite(loss):
                bar.close()
                diagnose_loss(model, xb, loss, epoch, step, kept_checkpoint())
            # the data needs no gradient: parameter gradients only (see nn.module)
            run_backward(model, loss_fn.backward(), input_grad=False)
            if guard:
                check_gradients(model, epoch, step, kept_checkpoint())
            if clip_grad_norm is not None:
                clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            n = len(xb)
            seen += n
            total_loss += float(loss) * n
            if metric_fn is not None:
                total_metric += metric_fn(out, yb) * n
            bar.update(step, loss=total_loss / seen)
        bar.close()
        if seen == 0:
            raise ValueError("fit: the training data yielded no batches")
        train_time = time.perf_counter() - t0
        record = {"epoch": epoch, "train_loss": total_loss / seen}
        if metric_fn is not None:
            record[f"train_{metric_name}"] = total_metric / seen
        if val_data is not None:
            val = evaluate(model, loss_fn, val_data, metric, batch_size)
            record["val_loss"] = val["loss"]
            if metric_fn is not None:
                record[f"val_{metric_name}"] = val[metric_name]
        record["lr"] = _current_lr(optimizer)
        record["time"] = train_time
        history.log(**record)
        log(_epoch_line(record, epochs, metric_name))

        if guard and not all_finite(record.get("val_loss", 0.0)):
            raise NonFiniteError("loss", None, epoch, n_batches or 0,
                                 "validation loss is NaN/Inf", kept_checkpoint())
        if scheduler is not None:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(record.get("val_loss", record["train_loss"]))
            else:
                scheduler.step()
        stop = early_stopping.update(epoch, history, model) if early_stopping else False
        monitored = record.get("val_loss", record["train_loss"])
        if checkpoint_dir is not None:
            improved = monitored < best_val
            best_val = min(best_val, monitored)
            meta = {"epoch": epoch, "history": dict(history), "best_val": best_val,
                    "rng_state": dlkern.random.default_rng().bit_generator.state,
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "early_stopping": (early_stopping.state_dict()
                                       if early_stopping is not None else None)}
            save_checkpoint(last_path, model, optimizer, **meta)
            if improved:
                save_checkpoint(best_path, model, optimizer, **meta)
        if stop:
            log(f"early stopping after epoch {epoch}: no improvement in "
                f"{early_stopping.monitor} for {early_stopping.patience} epochs "
                f"(best {early_stopping.best:.6g} at epoch {early_stopping.best_epoch})")
            break
    if early_stopping is not None:
        early_stopping.restore(model)
    return history


def _epoch_line(record, epochs, metric_name):
    parts = [f"epoch {record['epoch']:>3}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    if metric_name and f"train_{metric_name}" in record:
        parts.append(f"train_{metric_name} {record[f'train_{metric_name}']:.4f}")
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4g}")
    if metric_name and f"val_{metric_name}" in record:
        parts.append(f"val_{metric_name} {record[f'val_{metric_name}']:.4f}")
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['time']:.2f}s")
    return "  ".join(parts)
