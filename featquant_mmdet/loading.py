"""Loading configs and models, one way for the tools, the analyses, occlusion's saliency classifier, the
classifier-to-detector hand-off and the sweep (a service below ``models``, ``distortions``, ``evaluation`` and
``engine``, which all use it; ``featquant_mmdet.engine.loading`` re-exports it for the tools).

* :func:`load_config`: a config file with ``--cfg-options``-style overrides, mmdet registered and the config's
  default scope (``mmdet`` unless it names another) current, so that its model and datasets build as in a Runner;
* :func:`build_runner`: the Runner of a loaded config (what ``tools/train.py``, ``tools/test.py`` and the sweep run);
* :func:`build_model`: the eval-mode model of a config (file, ``Config``, or model dict) on a device, with a
  checkpoint's weights loaded strictly (every key and shape must match; the error lists what does not) or not.
"""
import copy
import itertools
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules as register_mmdet_modules
from mmengine.config import Config
from mmengine.registry import RUNNERS, DefaultScope, init_default_scope
from mmengine.runner import CheckpointLoader, Runner
from mmengine.runner.checkpoint import load_state_dict
from torch import nn

from .malloc import tune_malloc


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile(config)`` with ``cfg_options`` (``{'a.b': value}``, as ``--cfg-options`` gives them)
    merged, and its default scope made current."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    register_mmdet_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def read_state_dict(checkpoint: str) -> Dict[str, torch.Tensor]:
    """The model weights of an mmengine checkpoint (or a bare state dict), ``module.`` prefixes removed."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f'{checkpoint} holds no state dict (got {type(ckpt).__name__})')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}


def load_weights_strict(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str = 'checkpoint') -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a readable error listing missing, unexpected and
    mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mis_shaped = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or mis_shaped:

        def listing(title, keys):
            return f'\n  {title} ({len(keys)}): {keys[:10]}{" ..." if len(keys) > 10 else ""}' if keys else ''

        raise ValueError(f'{source} does not match the model {type(model).__name__} built from the config:'
                         + listing('missing keys', missing) + listing('unexpected keys', unexpected)
                         + listing('shape mismatches', mis_shaped))
    model.load_state_dict(state_dict, strict=True)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine's Runner saved last in ``work_dir`` (named by its ``last_checkpoint`` file)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise FileNotFoundError(f'no checkpoint in {work_dir} (no last_checkpoint file): its training did not finish')
    with open(pointer) as f:
        path = f.read().strip()
    path = path if osp.isabs(path) else osp.join(work_dir, osp.basename(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{pointer} names {path}, which does not exist')
    return path


def build_model_from_cfg(cfg) -> nn.Module:
    """Build (without initialising or loading weights) the model of a ``Config`` / dict with a ``model`` entry, or
    of a model dict with a ``type``, in the config's default scope (``mmdet`` unless it names another)."""
    if isinstance(cfg, Config) or (isinstance(cfg, dict) and 'model' in cfg):
        model_cfg, scope = cfg['model'], cfg.get('default_scope', 'mmdet')
    elif isinstance(cfg, dict) and 'type' in cfg:
        model_cfg, scope = cfg, 'mmdet'
    else:
        raise TypeError('expected a config file path, a Config or dict with a `model` entry, or a model config dict '
                        f'with a `type`; got {type(cfg).__name__}')
    if DefaultScope.get_current_instance() is None:
        init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)


def build_model(config, checkpoint: Optional[str] = None, device: str = 'cpu', strict: bool = True,
                cfg_options: Optional[dict] = None) -> nn.Module:
    """The eval-mode model of ``config`` (a file, ``Config``, dict with ``model``, or a model dict) on ``device``,
    with ``checkpoint``'s weights: all of them, checked key by key (``strict``), or those that fit (mmengine's
    lenient loading, which logs the rest). A missing checkpoint fails before the model is built."""
    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    state_dict = read_state_dict(checkpoint) if checkpoint is not None else None
    model = build_model_from_cfg(cfg)
    if state_dict is not None:
        if strict:
            load_weights_strict(model, state_dict, source=f'checkpoint {checkpoint}')
        else:
            load_state_dict(model, state_dict, strict=False)
    return model.to(device).eval()


_RUNNER_COUNT = itertools.count()


class _FormattedOnceConfig(Config):
    """A ``Config`` whose ``pretty_text`` is formatted once per content (a small LRU shared by its deep copies).

    mmengine formats the whole config with yapf (~1 s) each time it wants the text: logging it, dumping it twice at
    start, and into every checkpoint's meta; a run keeping a snapshot per epoch paid that at every one."""
    _texts: 'OrderedDict[tuple, str]' = OrderedDict()

    @property
    def pretty_text(self) -> str:
        key = (repr(self.to_dict()), self._format_python_code)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = Config.pretty_text.fget(self)
            while len(self._texts) > 8:
                self._texts.popitem(last=False)
        return text


def build_runner(cfg: Config) -> Runner:
    """The Runner named by the config (``runner_type``) or mmengine's default one, with glibc malloc tuned for
    large tensor buffers first (:mod:`featquant_mmdet.malloc`; ``FEATQUANT_MALLOC=system`` keeps glibc's own).

    Each runner of the process gets its own Visualizer name (the configured one + a counter) and, without an
    ``experiment_name``, its own (config stem + the counter): mmengine reuses an instance of the same name, and names
    them by config stem + the second unless the config names them (mmdet: ``'visualizer'``), so two runs in one
    process would share them (the second writing into the first's, possibly deleted, folder)."""
    tune_malloc()
    if type(cfg) is Config:
        cfg = copy.copy(cfg)
        object.__setattr__(cfg, '__class__', _FormattedOnceConfig)  # Config.__setattr__ writes into the dict
    number = next(_RUNNER_COUNT)
    if cfg.get('experiment_name') is None:
        stem = osp.splitext(osp.basename(cfg.filename))[0] if cfg.filename else 'run'
        cfg.experiment_name = f'{stem}_{number}'
    if isinstance(cfg.get('visualizer'), dict):  # mmdet's runtime names it 'visualizer': one instance per process
        cfg.visualizer = dict(cfg.visualizer, name=f'{cfg.visualizer.get("name", "visualizer")}_{number}')
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
