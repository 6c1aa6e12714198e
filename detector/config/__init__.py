"""Configuration: one typed model per kind of config, filled by its YAML defaults in ``configs/``.

:mod:`~detector.config.pipeline` is the pipeline's (``default.yaml``), :mod:`~detector.config.training` the
training recipe's, :mod:`~detector.config.tools` the simulator's and the demo 106 server's;
:mod:`~detector.config.loading` layers a YAML overlay and ``--set`` overrides over the defaults.
"""

from detector.config.loading import (
    DEFAULT_CONFIG,
    PIPELINE,
    SERVER,
    SIMULATOR,
    TRAIN_CONFIG,
    TRAINING,
    ConfigKind,
    load_config,
    simulator_settings,
)
from detector.config.pipeline import Config

__all__ = [
    "DEFAULT_CONFIG",
    "PIPELINE",
    "SERVER",
    "SIMULATOR",
    "TRAINING",
    "TRAIN_CONFIG",
    "Config",
    "ConfigKind",
    "load_config",
    "simulator_settings",
]
