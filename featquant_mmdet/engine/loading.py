"""The tools' and analyses' name for :mod:`featquant_mmdet.loading` (configs, models and runners), which lives
below ``engine`` so that ``models``, ``distortions`` and ``evaluation`` use it without importing upwards."""
from ..loading import (build_model, build_model_from_cfg, build_runner, last_checkpoint, load_config,
                       load_weights_strict, read_state_dict)

__all__ = ['build_model', 'build_model_from_cfg', 'build_runner', 'last_checkpoint', 'load_config',
           'load_weights_strict', 'read_state_dict']
