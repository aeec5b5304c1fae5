"""Per-epoch training history: a dict of equal-length lists, easy to plot or save."""


class History(dict):
    """history["train_loss"][i] is epoch i's value; keys appear as they are logged."""

    def log(self, **values):
        n = len(self.get("epoch", []))
        for key, value in values.items():
            column = self.setdefault(key, [None] * n)
            column.append(value)
        for key, column in self.items():  # keys not logged this epoch get None
            if len(column) < n + 1:
                column.append(None)

    def last(self, key, default=None):
        column = self.get(key)
        return column[-1] if column else default

    def to_arrays(self):
        import numpy as np

        return {k: np.asarray([np.nan if v is None else v for v in col], dtype=float)
                for k, col in self.items()}
