"""Training checkpoints: model weights, optimizer state and loop state in one .npz.

Arrays are stored under flat keys ("model/<name>", "optimizer/state/<i>/<key>");
everything else (hyperparameters, epoch, history) as one JSON string, so a checkpoint
loads without pickle. The file is written atomically (dlkern.serialization), so an
interrupted save leaves the previous checkpoint intact.
"""
import json

import numpy as np

from dlkern.serialization import atomic_savez

FORMAT = "dlkern-checkpoint-1"


def _split_state(state, prefix, arrays):
    """Replace arrays in a nested dict/list by references, collecting them in `arrays`."""
    if isinstance(state, np.ndarray):
        arrays[prefix] = state
        return {"__array__": prefix}
    if isinstance(state, dict):
        return {str(k): _split_state(v, f"{prefix}/{k}", arrays) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_split_state(v, f"{prefix}/{i}", arrays) for i, v in enumerate(state)]
    if isinstance(state, np.generic):
        return state.item()
    return state


def _join_state(meta, arrays):
    if isinstance(meta, dict):
        if set(meta) == {"__array__"}:
            return arrays[meta["__array__"]]
        return {k: _join_state(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_join_state(v, arrays) for v in meta]
    return meta


def save_checkpoint(path, model, optimizer=None, **meta):
    arrays = {}
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = np.asarray(value)
    record = {"format": FORMAT, "meta": meta}
    if optimizer is not None:
        record["optimizer"] = _split_state(optimizer.state_dict(), "optimizer", arrays)
    arrays["__meta__"] = np.asarray(json.dumps(record))
    atomic_savez(path, arrays)


def load_checkpoint(path, model, optimizer=None):
    """Load weights (and optimizer state) from `path`; return the saved meta dict."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads(str(arrays.pop("__meta__")))
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dlkern training checkpoint "
                         f"(format {record.get('format')!r})")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    model.load_state_dict(model_state)
    if optimizer is not None:
        if "optimizer" not in record:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        # JSON made the integer state keys strings; Optimizer.load_state_dict takes those
        optimizer.load_state_dict(_join_state(record["optimizer"], arrays))
    return record["meta"]
