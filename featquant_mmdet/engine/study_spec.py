"""A study spec: its keys and defaults, loading from a config file, and every check before a step starts.

The keys are those of :data:`DEFAULTS` (documented in :mod:`featquant_mmdet.engine.study`); a variant has the keys of
:data:`VARIANT_KEYS`. :func:`check_spec` raises one :class:`~featquant_mmdet.engine.stages.StageError` naming the
first mistake; :func:`parse_variant` reads the study tool's ``--variant NAME=CONFIG[:key=value,...]``.
"""
import os.path as osp
from typing import Optional

from .stages import StageError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = ('detection', 'classification')
DEFAULTS = dict(
    task='detection', seeds=[0], reference=None, distortions=['mix'], levels=[1, 2, 3, 4], columns=None,
    classifier_sweep=False, recommended_alpha_lr_mult=1.0, classifier_distortions=['all', 'mix_minor', 'mix_heavy'],
    level=0.95, threads=1, cpu_capability=None, jobs=1, workers=0, data_seed=0,
    data=dict(voc=dict(num_train=16, num_test=4, image_size=(192, 144), style='photo'),
              imagenet=dict(num_train=4, num_val=1, image_size=64, style='photo')),
    pretrain=dict(epochs=1, batch=8, lr=0.01, scale=64),
    detect=dict(iters=4, lr=0.001, clip=10.0, scale=(192, 144)),
    weights=dict(data=1.0, pretrain=4.0, train=4.0, robustness=3.0, robustness_classifier=1.0), voc_root=None,
    imagenet_root=None, saliency=None, variants=[])
VARIANT_KEYS = ('name', 'config', 'pretrain', 'options', 'alpha_lr_mult')


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def load_spec(path: Optional[str] = None, overrides: Optional[dict] = None) -> dict:
    """The spec of a config file (mmengine ``Config``; its keys over :data:`DEFAULTS`) and ``overrides``."""
    spec = dict(DEFAULTS)
    if path is not None:
        if not osp.isfile(path):
            raise StageError(f'study spec {path} does not exist')
        from mmengine.config import Config
        spec = _merge(spec, Config.fromfile(path).to_dict())
    return _merge(spec, overrides or {})


def repo_path(path: str) -> str:
    """``path`` as given when absolute, else relative to the repository (how specs name configs)."""
    return path if osp.isabs(path) else osp.join(REPO, path)


def check_spec(spec: dict) -> dict:
    """Every mistake the spec can hold, found before any step starts: one :class:`StageError` naming it."""
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise StageError(f'unknown study keys {unknown}; accepted: {sorted(DEFAULTS)}')
    if spec['task'] not in TASKS:
        raise StageError(f'task must be one of {TASKS}, got {spec["task"]!r}')
    seeds = spec['seeds']
    if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise StageError(f'seeds must be distinct integers >= 0 (at least one), got {seeds!r}')
    for key, minimum in (('threads', 1), ('jobs', 1), ('workers', 0)):
        if isinstance(spec[key], bool) or not isinstance(spec[key], int) or spec[key] < minimum:
            raise StageError(f'{key} must be an integer >= {minimum}, got {spec[key]!r}')
    if not 0 < spec['level'] < 1:
        raise StageError(f'level must lie in (0, 1), e.g. 0.95, got {spec["level"]!r}')
    variants = spec['variants']
    if not variants:
        raise StageError('the study has no variant: give variants in the spec or --variant NAME=CONFIG')
    names = [v.get('name') for v in variants]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n.replace('-', '').replace('+', '').replace(
            '_', '').replace('.', '').isalnum() for n in names):
        raise StageError(f'variant names must be distinct words (letters, digits, - + _ .), got {names}')
    if spec['classifier_sweep'] and spec['task'] != 'detection':
        raise StageError('classifier_sweep (sweep the pretrained classifiers too) needs task detection')
    if spec['reference'] is not None and spec['reference'] not in names:
        raise StageError(f'reference {spec["reference"]!r} is not a variant; variants: {names}')
    for v in variants:
        bad = sorted(set(v) - set(VARIANT_KEYS))
        if bad:
            raise StageError(f'variant {v["name"]}: unknown keys {bad}; accepted: {list(VARIANT_KEYS)}')
        needed = ('config', 'pretrain') if spec['task'] == 'detection' else ('config', )
        for key in needed:
            if not v.get(key) or not osp.isfile(repo_path(v[key])):
                what = 'config' if key == 'config' else 'pretraining config'
                raise StageError(f'variant {v["name"]}: {what} {v.get(key)!r} does not exist')
        mult = v.get('alpha_lr_mult')
        if mult == 'recommended':
            mult = spec['recommended_alpha_lr_mult']
        if mult is not None and (isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult < 0):
            raise StageError(f'variant {v["name"]}: alpha_lr_mult must be a number >= 0 or \'recommended\' '
                             f'(recommended_alpha_lr_mult), got {mult!r}')
    saliency = spec['saliency']
    if saliency is not None:
        if (not isinstance(saliency, dict) or sorted(saliency) != ['config', 'seed'] or not saliency['config']
                or not osp.isfile(repo_path(saliency['config']))):
            raise StageError(f'saliency must be dict(config=<an existing classifier config>, seed=<int>), got '
                             f'{saliency!r}')
        if isinstance(saliency['seed'], bool) or not isinstance(saliency['seed'], int) or saliency['seed'] < 0 or \
                saliency['seed'] in seeds:
            raise StageError(f'saliency.seed must be an integer >= 0 that no training of the study uses (seeds '
                             f'{list(seeds)}), got {saliency["seed"]!r}')
        if spec['task'] != 'classification' and not spec['classifier_sweep']:
            raise StageError('saliency (targeted occlusion) is for classifier sweeps: task classification, or '
                             'classifier_sweep = True')
    from ..evaluation.robustness.cells import resolve_distortions, resolve_levels
    from ..evaluation.robustness.errors import RobustnessError
    has_saliency = saliency is not None
    try:
        resolve_distortions(list(spec['distortions']), spec['task'], has_saliency)
        if spec['classifier_sweep']:
            resolve_distortions(list(spec['classifier_distortions']), 'classification', has_saliency)
        resolve_levels(list(spec['levels']))
    except RobustnessError as err:
        raise StageError(f'distortions: {err}') from None
    from ..datasets.synthetic_voc import STYLES
    for name in ('voc', 'imagenet'):
        style = spec['data'][name].get('style')
        if style not in STYLES:
            raise StageError(f'data.{name}.style must be one of {", ".join(STYLES)}, got {style!r}')
    return spec


def parse_variant(text: str, task: str) -> dict:
    """``NAME=CONFIG[:key=value,...]``: cfg-options, and the study keys ``pretrain=CONFIG``, ``alpha_lr_mult=X``."""
    name, sep, rest = text.partition('=')
    if not sep or not name or not rest:
        raise StageError(f'--variant {text!r}: expected NAME=CONFIG[:key=value,...]')
    config, _, opts = rest.partition(':')
    variant = dict(name=name, config=config, options=[])
    depth, item = 0, ''
    for ch in opts + ',':  # split at commas outside brackets: values may be lists
        if ch == ',' and depth == 0:
            if item:
                key, eq, value = item.partition('=')
                if not eq:
                    raise StageError(f'--variant {text!r}: {item!r} is not key=value')
                if key in ('pretrain', 'alpha_lr_mult'):
                    try:
                        variant[key] = value if key == 'pretrain' or value == 'recommended' else float(value)
                    except ValueError:
                        raise StageError(f'--variant {text!r}: alpha_lr_mult must be a number, got {value!r}') \
                            from None
                else:
                    variant['options'].append(item)
            item = ''
            continue
        depth += ch in '([{'
        depth -= ch in ')]}'
        item += ch
    return variant
