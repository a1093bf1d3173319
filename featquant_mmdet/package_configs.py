"""``featquant_mmdet::`` config paths: inherit the plugin's configs from any project, as ``mmdet::`` ones.

The configs ship inside the package in OpenMMLab's layout, ``featquant_mmdet/.mim/configs`` (in a checkout a
symlink to ``configs/``, in a wheel a copy), so another project's config can start from them::

    _base_ = 'featquant_mmdet::faster_rcnn_zf_pow1_voc.py'           # configs/faster_rcnn_zf_pow1_voc.py
    _base_ = 'featquant_mmdet::pretrain/resnet18_pow1_imagenet.py'   # configs/pretrain/...

mmengine 0.10.7 resolves ``pkg::path`` only for the packages of a hard-coded map (``MODULE2PACKAGE`` in
``mmengine/config/utils.py``, OpenMMLab's own projects; any other name fails an assertion), only for paths with a
folder (its pattern is ``\\w*::\\w*/\\w*``), and finds the package through ``pkg_resources``' distribution
location, which is not the package folder for an editable install. It has no registration mechanism for other
packages. So ``import featquant_mmdet`` wraps ``Config._get_cfg_path``, the one function that turns a base path
into a file, for the ``featquant_mmdet::`` prefix only (every other path goes to mmengine unchanged; the patch is
``package_configs`` in :mod:`featquant_mmdet.compat`, with the other patches of mmengine): the file is looked up
in the ``.mim/configs`` of the imported package (:func:`config_path`) and its dicts get the scope ``'mmdet'``,
since the plugin's components live in mmdet's registries (mmengine gives ``mmdet::`` bases that scope too).

The wrapper must be in place before the config is parsed: the project's tools import the plugin first; in your own
entry point ``import featquant_mmdet`` before ``Config.fromfile`` (``custom_imports`` come too late, mmengine reads
``_base_`` before it imports them).
"""
import os.path as osp

PREFIX = 'featquant_mmdet::'
# registry scope of the plugin's configs: their types are registered in mmdet's registries
CONFIG_SCOPE = 'mmdet'


def package_config_dir() -> str:
    """The configs shipped with this package: ``<featquant_mmdet>/.mim/configs``."""
    return osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')


def config_path(name: str) -> str:
    """The file of the shipped config ``name`` (``'faster_rcnn_zf_voc.py'``, ``'pretrain/zf_imagenet.py'``, with
    or without the ``featquant_mmdet::`` prefix), e.g. for ``Config.fromfile``.

    Raises:
        FileNotFoundError: no such config; the message says where it was looked for.
    """
    relative = name[len(PREFIX):] if name.startswith(PREFIX) else name
    root = package_config_dir()
    path = osp.normpath(osp.join(root, relative))
    if not path.startswith(osp.normpath(root) + osp.sep) or not osp.isfile(path):
        hint = ('' if osp.isdir(root) else
                ' (that folder is missing: this installation of featquant_mmdet has no configs; reinstall it with '
                '`pip install .` or `pip install -e .` from the repository)')
        raise FileNotFoundError(f'no config {relative!r} in featquant_mmdet\'s configs at {root}{hint}; '
                                f"give a path under configs/, e.g. '{PREFIX}faster_rcnn_zf_pow1_voc.py'")
    return path
