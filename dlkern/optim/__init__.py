"""Optimizers with torch.optim's names, hyperparameters and update rules, and LR schedulers."""
from dlkern.optim.optimizer import Optimizer
from dlkern.optim.sgd import SGD
from dlkern.optim.adagrad import Adagrad
from dlkern.optim.adadelta import Adadelta
from dlkern.optim.rmsprop import RMSprop
from dlkern.optim.adam import Adam, AdamW
from dlkern.optim import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "lr_scheduler"]
