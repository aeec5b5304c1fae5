"""Argument parsing shared by dlkern.functional and dlkern.reference: one module per
kernel family, so both backends accept and reject exactly the same inputs."""
