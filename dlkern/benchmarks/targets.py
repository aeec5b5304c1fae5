"""The figures issue 5 asks for, checked against each row of the bench report.

Each rule gives a row's minimum speedup over PyTorch ("torch"), over the NumPy
reference ("ref") and percentage of the matching ceiling ("ceil"); a row meets its
target when every figure that applies to it is reached. Read from the issue (float32,
2 threads, ratios from one run):
  - conv2d on GEMM-bound shapes (ResNet 3x3, strided 3x3, 1x1): torch >= 1, ceil >= 70%;
  - conv2d on small-channel shapes (LeNet and CIFAR first layers) and depthwise: torch >= 2;
  - pooling, batch norm (train), softmax, log_softmax, cross-entropy: torch >= 2,
    ceil >= 50% of the large memory copy (forward and forward+backward alike);
  - causal conv1d forward+backward: torch >= 1.5 (PyTorch's conv1d on a padded input);
  - memory-bound kernels (those above and the activations): ref >= 5;
    GEMM-bound ones (conv2d, causal conv1d, linear): ref >= 2;
  - one training step of each model: torch >= 1.
"""

GEMM_BOUND_CONV2D = ("ResNet 3x3", "strided 3x3", "1x1")
SMALL_CHANNEL_CONV2D = ("LeNet conv1", "CIFAR conv1", "depthwise 3x3")
MEMORY_BOUND_VS_TORCH = ("pooling", "batch_norm", "softmax")
MEMORY_BOUND = MEMORY_BOUND_VS_TORCH + ("activations",)
GEMM_BOUND = ("conv2d", "causal_conv1d", "linear")

#: figure name -> the row field it reads. For GB/s rows "ceil" is the percentage of
#: the large memory copy, the bandwidth ceiling the issue defines ("a large memory
#: copy"); the row's own same-size, in-cache copy ("pct") is reported beside it as the
#: stricter roofline.
FIELDS = {"ref": "vs_ref", "torch": "vs_torch", "ceil": "pct"}


def _field(row, figure):
    if figure == "ceil" and row.get("unit") == "GB/s":
        return "pct_large_copy"
    return FIELDS[figure]


def minimums(row):
    """{figure: minimum} that apply to a report row (family, kernel, shape)."""
    family, kernel, shape = row["family"], row["kernel"], row["shape"]
    need = {}
    if family in MEMORY_BOUND:
        need["ref"] = 5.0
    if family in GEMM_BOUND:
        need["ref"] = 2.0
    if family in MEMORY_BOUND_VS_TORCH:
        need.update(torch=2.0, ceil=50.0)
    if family == "conv2d" and shape.startswith(GEMM_BOUND_CONV2D):
        need.update(torch=1.0, ceil=70.0)
    if family == "conv2d" and shape.startswith(SMALL_CHANNEL_CONV2D):
        need["torch"] = 2.0
    if family == "causal_conv1d" and kernel.endswith("fwd+bwd"):
        need["torch"] = 1.5
    if family == "train step":
        need["torch"] = 1.0
    return need


def check(row):
    """[{"figure", "min", "value", "met"}] for each figure that applies to the row;
    "met" is None when the value was not measured (PyTorch not installed)."""
    out = []
    for figure, minimum in minimums(row).items():
        value = row.get(_field(row, figure))
        out.append({"figure": figure, "min": minimum, "value": value,
                    "met": None if value is None else bool(value >= minimum)})
    return out


def verdict(checks):
    """The compact table cell: "met", "missed: torch+ceil", "?" (not measured) or "-"."""
    if not checks:
        return "-"
    missed = [c["figure"] for c in checks if c["met"] is False]
    if missed:
        return "missed: " + "+".join(missed)
    if any(c["met"] is None for c in checks):
        return "?"
    return "met"
