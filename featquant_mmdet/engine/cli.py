"""Command-line config handling shared by the tools (the arguments of mmdet's tools)."""
import argparse
import os
import os.path as osp
import warnings
from typing import Optional

from mmengine.config import Config, DictAction

from ..malloc import resolve_setting as resolve_malloc
from ..ops.path import log_header_entry, setting as fused_maps_setting
from .loading import load_config as load_config_file


def quiet_warnings() -> None:
    """Silence, in the tools' own processes (a user's process that imports the package keeps its warnings), the
    deprecation warning setuptools >= 80 raises when mmengine imports ``pkg_resources`` to find ``mmdet::`` config
    bases. Called by each tool before it loads a config, that is before mmengine first imports ``pkg_resources``."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API', category=UserWarning)


def check_file(parser: argparse.ArgumentParser, path: Optional[str], what: str) -> None:
    """A usage error (exit 2) naming ``what`` when ``path`` is given but is not a file."""
    if path is not None and not osp.isfile(path):
        parser.error(f'{what} not found: {path}')


def check_environment(parser: argparse.ArgumentParser) -> None:
    """A usage error (exit 2) for a ``FEATQUANT_MALLOC`` or ``FEATQUANT_FUSED_MAPS`` value the run would refuse."""
    for resolve in (resolve_malloc, fused_maps_setting):
        try:
            resolve()
        except ValueError as err:
            parser.error(str(err))


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs and models (default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs; e.g. train_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: started by torchrun, see tools/dist_train.sh)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_saliency_args(parser: argparse.ArgumentParser) -> None:
    """The classifier whose saliency map places the masks of ``targeted_occlusion``: one name in every tool."""
    parser.add_argument('--saliency-classifier', metavar='CONFIG',
                        help='config of the classifier whose saliency map places the masks of targeted_occlusion '
                             '(the paper uses a Plain-18)')
    parser.add_argument('--saliency-checkpoint', metavar='CKPT', help='weights of --saliency-classifier')


def saliency_classifier(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[dict]:
    """``dict(config=..., checkpoint=...)`` of ``--saliency-classifier`` / ``--saliency-checkpoint``, None without
    them; a usage error (exit 2) when only one is given or a file is missing."""
    given = (args.saliency_classifier, args.saliency_checkpoint)
    if not any(given):
        return None
    if not all(given):
        parser.error('--saliency-classifier and --saliency-checkpoint go together')
    for option, path in zip(('--saliency-classifier', '--saliency-checkpoint'), given):
        check_file(parser, path, f'{option} file')
    return dict(config=given[0], checkpoint=given[1])


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` with ``--cfg-options`` applied (:func:`featquant_mmdet.engine.loading.load_config`),
    then the launcher, the work dir and ``env_cfg.featquant_maps`` (:func:`featquant_mmdet.ops.describe` of the
    training device, which the Runner logs in its environment header)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config_file(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.setdefault('default_scope', 'mmdet')
    # which maps run where and why, in the "Runtime environment" the Runner logs (mmengine's default env_cfg kept)
    cfg.env_cfg = {**(cfg.get('env_cfg') or dict(dist_cfg=dict(backend='nccl'))), **log_header_entry()}
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
