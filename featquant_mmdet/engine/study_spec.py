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
    weights=dict(data=1.0, pretrain=4.0, train=4.0, robustness=3.0, robustness_classifier=1.0,
                 robustness_own=0.5), voc_root=None,
    imagenet_root=None, saliency=None, own_saliency=False, match=None, variants=[])
VARIANT_KEYS = ('name', 'config', 'pretrain', 'options', 'alpha_lr_mult')
# match: snapshots matched on a clean metric (featquant_mmdet.engine.snapshots); pretrain / detect: the metric key of
# the classifiers / detectors (None: their last checkpoint), interval / begin: the classifiers' snapshot epochs,
# detect_interval: the detectors' snapshot iterations (None: a tenth of the schedule), prune: delete the unmatched
MATCH_DEFAULTS = dict(pretrain=None, detect=None, tolerance=1.0, target='reference', interval=1, begin=1,
                      detect_interval=None, prune=True)


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
    if spec['own_saliency'] not in (True, False):
        raise StageError(f'own_saliency must be True or False, got {spec["own_saliency"]!r}')
    if spec['own_saliency'] and saliency is None:
        raise StageError('own_saliency (a second occlusion column, each model occluded by its own saliency) needs '
                         'the study\'s saliency classifier too (saliency = dict(config=..., seed=...))')
    if saliency is not None:
        check_saliency_architecture(spec)
    if spec['match'] is not None:
        spec['match'] = check_match(spec['match'], spec)
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


def check_match(match, spec: dict) -> dict:
    """The ``match`` option with its defaults; :class:`StageError` for a key, metric, target or interval it cannot
    take."""
    if not isinstance(match, dict) or set(match) - set(MATCH_DEFAULTS):
        raise StageError(f'match must be a dict with keys from {list(MATCH_DEFAULTS)}, got {match!r}')
    match = dict(MATCH_DEFAULTS, **match)
    for key in ('pretrain', 'detect'):
        if match[key] is not None and (not isinstance(match[key], str) or not match[key]):
            raise StageError(f'match.{key} must be a metric key (e.g. accuracy/top1, pascal_voc/mAP) or None, got '
                             f'{match[key]!r}')
    if match['pretrain'] is None and match['detect'] is None:
        raise StageError('match needs pretrain=<classifier metric> (e.g. accuracy/top1) and/or detect=<detector '
                         'metric> (e.g. pascal_voc/mAP)')
    if match['detect'] is not None and spec['task'] != 'detection':
        raise StageError(f'match.detect ({match["detect"]!r}) is for detection studies; this one is {spec["task"]}')
    target, tol = match['target'], match['tolerance']
    if isinstance(target, bool) or not isinstance(target, (int, float, str)) or (
            isinstance(target, str) and target not in ('reference', 'common')):
        raise StageError(f"match.target must be a number, 'reference' or 'common', got {target!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise StageError(f'match.tolerance must be a number >= 0 (the metric\'s units), got {tol!r}')
    for key, allow_none in (('interval', False), ('begin', False), ('detect_interval', True)):
        value = match[key]
        if not (allow_none and value is None) and (isinstance(value, bool) or not isinstance(value, int)
                                                   or value < 1):
            raise StageError(f'match.{key} must be an integer >= 1{" or None" if allow_none else ""}, got {value!r}')
    if match['begin'] >= spec['pretrain']['epochs'] and match['pretrain'] is not None:
        raise StageError(f'match.begin ({match["begin"]}) leaves no snapshot before the last epoch '
                         f'({spec["pretrain"]["epochs"]}): nothing to match')
    if match['prune'] not in (True, False):
        raise StageError(f'match.prune must be True or False, got {match["prune"]!r}')
    return match


def parse_options(options) -> dict:
    """``['a.b=value', ...]`` (``--cfg-options``) as mmengine's ``DictAction`` reads them."""
    from mmengine.config import DictAction
    out = {}
    for item in options or []:
        key, _, value = item.partition('=')
        out[key] = DictAction._parse_iterable(value)
    return out


def architecture(config: str, options=()) -> tuple:
    """A classifier's architecture: its backbone type and depth (``('ZF', None)``, ``('QuantResNet', 18)``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(repo_path(config))
    if options:
        cfg.merge_from_dict(parse_options(options))
    backbone = cfg.get('model', {}).get('backbone', {}) or {}
    return backbone.get('type'), backbone.get('depth')


def check_saliency_architecture(spec: dict) -> None:
    """The saliency classifier of targeted occlusion must be of an architecture none of the compared models has:
    masks placed by a model's own saliency target that model (and favour every model unlike it)."""
    saliency = architecture(spec['saliency']['config'])
    key = 'pretrain' if spec['task'] == 'detection' else 'config'
    same = [v['name'] for v in spec['variants'] if architecture(v[key], v.get('options')) == saliency]
    if same:
        name = saliency[0] + (f'-{saliency[1]}' if saliency[1] else '')
        raise StageError(f'saliency classifier {spec["saliency"]["config"]} is a {name}, the architecture of the '
                         f'compared variant(s) {same}: its masks would target them; use a classifier of another '
                         'architecture (e.g. configs/pretrain/resnet18_imagenet.py for ZF variants, the paper\'s '
                         'Plain-18)')


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
