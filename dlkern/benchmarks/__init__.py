"""`dlkern bench`: one command that compares dlkern, the NumPy reference and PyTorch.

timing.py measures (medians, implementations alternated in one process), ceilings.py
gives the machine's FLOP and bandwidth limits in the same run, cases.py lists the
kernels and shapes, models.py the training-step comparisons, report.py prints the
table and writes the JSON and the chart.
"""
