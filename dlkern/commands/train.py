"""`dlkern train`: train a real model on real data with the C kernels.

--task digits (default): a small CNN on scikit-learn's bundled 8x8 digits, held-out
20% test split. --task adding: a TCN on the adding problem (Bai et al. 2018).
Prints per-epoch progress, test accuracy (or MSE), time per epoch and the speedup of
the C kernels over the NumPy reference on the same model; saves the checkpoint and
a PNG of the curves in --out.
"""
import argparse
import copy
import os
import time

import numpy as np

TASK_DEFAULTS = {
    "digits": dict(epochs=25, batch_size=64, lr=2e-3, patience=8),
    "adding": dict(epochs=20, batch_size=32, lr=2e-3, patience=5),
}

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta")


def add_arguments(parser):
    parser.add_argument("--task", choices=sorted(TASK_DEFAULTS), default="digits",
                        help="what to train (default: digits)")
    parser.add_argument("--epochs", type=int, help="epochs (digits 25, adding 20)")
    parser.add_argument("--batch-size", type=int, help="batch size (digits 64, adding 32)")
    parser.add_argument("--lr", type=float, help="learning rate (default 2e-3)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                        help="optimizer (default adam; sgd uses momentum 0.9, nesterov)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="weight decay")
    parser.add_argument("--clip", type=float, default=None,
                        help="clip the global gradient norm to this value")
    parser.add_argument("--patience", type=int,
                        help="early-stopping patience in epochs on validation loss")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the kernels (default: all cores / OMP_NUM_THREADS)")
    parser.add_argument("--out", default=None, help="output directory (default runs/<task>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in --out")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip timing the C kernels against the NumPy reference")
    parser.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    adding = parser.add_argument_group("adding task")
    adding.add_argument("--seq-len", type=int, default=200, help="sequence length T (200)")
    adding.add_argument("--levels", type=int, default=4, help="TCN levels (4)")
    adding.add_argument("--channels", type=int, default=24, help="channels per level (24)")
    adding.add_argument("--kernel-size", type=int, default=8, help="TCN kernel size (8)")
    adding.add_argument("--dropout", type=float, default=0.0, help="TCN dropout (0)")
    adding.add_argument("--train-samples", type=int, default=20000,
                        help="training sequences (20000)")
    adding.add_argument("--test-samples", type=int, default=2000, help="test sequences (2000)")


def make_optimizer(name, params, lr, weight_decay):
    from dlkern import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    classes = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
               "adagrad": optim.Adagrad, "adadelta": optim.Adadelta}
    return classes[name](params, lr=lr, weight_decay=weight_decay)


def time_training_steps(model, loss_fn, x, y, steps=5):
    """{"c": s, "reference": s}: median seconds of one training step (forward, loss,
    backward) of a copy of model on each backend, the two alternated after a warm-up.
    Like training itself, backward computes no gradient of the input images."""
    import dlkern
    from dlkern.benchmarks.timing import measure
    from dlkern.nn.module import run_backward

    model = copy.deepcopy(model)
    model.train()

    def step(backend):
        def run():
            with dlkern.use_backend(backend):
                model.zero_grad()
                loss_fn(model(x), y)
                run_backward(model, loss_fn.backward(), input_grad=False)
        return run

    return measure({"c": step("c"), "reference": step("reference")},
                   min_rounds=steps, max_rounds=steps)


def plot_curves(history, path, metric_label):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'dlkern[train]')")
        return None
    h = history.to_arrays()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(h["epoch"], h["train_loss"], label="train")
    if "val_loss" in h:
        axes[0].plot(h["epoch"], h["val_loss"], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("loss")
    key = f"val_{metric_label}" if f"val_{metric_label}" in h else None
    if key:
        axes[1].plot(h["epoch"], h[f"train_{metric_label}"], label="train")
        axes[1].plot(h["epoch"], h[key], label="validation")
        axes[1].set_ylabel(metric_label)
        axes[1].legend()
        axes[1].set_title(metric_label)
    else:
        axes[1].plot(h["epoch"], h["time"], marker="o")
        axes[1].set_ylabel("seconds per epoch")
        axes[1].set_title("time per epoch")
    axes[1].set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args):
    import dlkern
    from dlkern import nn
    from dlkern.data import DataLoader
    from dlkern.training import EarlyStopping, evaluate, fit

    defaults = TASK_DEFAULTS[args.task]
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    batch_size = args.batch_size if args.batch_size is not None else defaults["batch_size"]
    lr = args.lr if args.lr is not None else defaults["lr"]
    patience = args.patience if args.patience is not None else defaults["patience"]
    out_dir = args.out or os.path.join("runs", args.task)
    os.makedirs(out_dir, exist_ok=True)
    if args.threads is not None:
        dlkern.set_num_threads(args.threads)
    dlkern.random.seed(args.seed)

    if args.task == "digits":
        from dlkern.tasks.digits import digits_cnn, load_digits_split

        train, val, test = load_digits_split(seed=args.seed)
        model = digits_cnn()
        loss_fn = nn.CrossEntropyLoss()
        metric = "accuracy"
        describe = (f"digits CNN ({sum(p.data.size for p in model.parameters())} parameters), "
                    f"{len(train[0])} train / {len(val[0])} validation / {len(test[0])} test "
                    f"images of 8x8")
    else:
        from dlkern.tasks.adding import AddingTCN, make_adding_data, receptive_field

        x, y = make_adding_data(args.train_samples, args.seq_len, seed=args.seed)
        n_val = max(1, len(x) // 10)
        train, val = (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])
        test = make_adding_data(args.test_samples, args.seq_len, seed=args.seed + 1)
        model = AddingTCN(args.channels, args.levels, args.kernel_size, args.dropout)
        loss_fn = nn.MSELoss()
        metric = None
        rf = receptive_field(args.levels, args.kernel_size)
        describe = (f"TCN adding problem T={args.seq_len} ({args.levels} levels x "
                    f"{args.channels} channels, kernel {args.kernel_size}, receptive field {rf}; "
                    f"{sum(p.data.size for p in model.parameters())} parameters), "
                    f"{len(train[0])} train / {len(val[0])} validation / {len(test[0])} test "
                    f"sequences; predicting 1.0 gives MSE ~0.167")
        if rf < args.seq_len:
            print(f"warning: receptive field {rf} < sequence length {args.seq_len}: "
                  f"the model cannot see the first marker")

    print(f"dlkern train --task {args.task}: {describe}")
    print(f"optimizer {args.optimizer} lr {lr:g}, batch {batch_size}, up to {epochs} epochs, "
          f"{dlkern.get_num_threads()} threads, output in {out_dir}")
    loader = DataLoader(train[0], train[1], batch_size=batch_size, shuffle=True,
                        seed=args.seed)
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr, args.weight_decay)
    stopper = EarlyStopping(patience=patience, monitor="val_loss", restore_best=True)
    t0 = time.perf_counter()
    history = fit(model, loss_fn, optimizer, loader, val, epochs=epochs, metric=metric,
                  early_stopping=stopper, checkpoint_dir=os.path.join(out_dir, "checkpoints"),
                  resume=args.resume, clip_grad_norm=args.clip,
                  progress=not args.no_progress)
    total = time.perf_counter() - t0
    result = evaluate(model, loss_fn, test, metric)
    epoch_times = [t for t in history["time"] if t is not None]
    print(f"trained {len(epoch_times)} epochs in {total:.1f}s "
          f"({np.mean(epoch_times):.2f}s per epoch on average, training only)")
    if metric == "accuracy":
        print(f"test accuracy {100 * result['accuracy']:.2f}%  (test loss {result['loss']:.4f}, "
              f"best validation epoch {stopper.best_epoch})")
    else:
        print(f"test MSE {result['loss']:.3g}  (best validation epoch {stopper.best_epoch}; "
              f"the trivial predictor's MSE is ~0.167)")

    model_path = os.path.join(out_dir, "model.npz")
    dlkern.save(model, model_path)
    print(f"saved the model to {model_path}")
    if not args.no_plot:
        png = plot_curves(history, os.path.join(out_dir, "curves.png"), metric or "mse")
        if png:
            print(f"saved the loss and accuracy curves to {png}")

    if not args.no_compare:
        xb, yb = train[0][:batch_size], train[1][:batch_size]
        times = time_training_steps(model, loss_fn, xb, yb)
        c_time, ref_time = times["c"], times["reference"]
        print(f"one training step (forward+backward, batch {len(xb)}): C kernels "
              f"{1e3 * c_time:.2f} ms, NumPy reference {1e3 * ref_time:.2f} ms: "
              f"{ref_time / c_time:.1f}x speedup")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dlkern train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0
