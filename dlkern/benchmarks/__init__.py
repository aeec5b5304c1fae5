"""`dlkern bench`: one command that compares dlkern, the NumPy reference and PyTorch.

timing.py measures (medians, implementations alternated in blocks in one process, each
block after the other thread pools have gone idle), ceilings.py gives the machine's FLOP
ceiling (the best large sgemm) and bandwidth ceilings (a copy of each case's own size)
in the same run, cases.py lists the kernels and shapes, models.py the training-step
comparisons, targets.py the figures of issue 5, report.py prints the table and writes
the JSON and the chart.
"""
