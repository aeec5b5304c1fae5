"""Ready-made training tasks for `dlkern train`: data and model for each."""
