"""Mini-batches over NumPy arrays and image augmentations."""
from dlkern.data.loader import DataLoader
from dlkern.data.transforms import (Compose, GaussianNoise, RandomCrop, RandomErasing,
                                    RandomHorizontalFlip)

__all__ = ["DataLoader", "Compose", "RandomHorizontalFlip", "RandomCrop", "RandomErasing",
           "GaussianNoise"]
