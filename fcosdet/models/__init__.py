# Importing the sub-packages registers every model component.
from . import (  # noqa: F401
    backbones,
    data_preprocessors,
    dense_heads,
    detectors,
    layers,
    losses,
    necks,
    task_modules,
    test_time_augs,
    utils,
)
