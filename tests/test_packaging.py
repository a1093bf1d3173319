"""Packaging the OpenMMLab way: ``featquant_mmdet::`` configs from another project (checkout and built wheel), the
mmcv/mmdet/mmengine ranges (requirements/mminstall.txt, setup.cfg, the check at import)."""
import configparser
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

import featquant_mmdet
from featquant_mmdet import version_check
from featquant_mmdet.package_configs import config_path, package_config_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# A config of another project: inherits the plugin's configs by package name only.
CHILD_CONFIGS = {
    'det.py': """
        _base_ = 'featquant_mmdet::faster_rcnn_zf_pow1_voc.py'
        model = dict(roi_head=dict(bbox_head=dict(num_classes=3, fc_out_channels=32)))
        """,
    'cls.py': """
        _base_ = 'featquant_mmdet::pretrain/resnet18_pow1_imagenet.py'
        model = dict(head=dict(num_classes=5))
        """,
}
# Loads the child configs of the current folder and builds their models through mmengine's root registry with no
# default scope (or whatever scope the process has), so that the scope the configs carry is what finds the plugin's
# and mmdet's classes. Run by a fresh interpreter (an unpacked wheel) or in process (the checkout).
LOAD_CODE = """
import featquant_mmdet
from mmengine.config import Config
from mmengine.registry import MODELS
out = dict(package=featquant_mmdet.__file__)
for name in ('det', 'cls'):
    cfg = Config.fromfile(name + '.py')
    model = MODELS.build(cfg.model)
    convs = sorted({type(m).__name__ for m in model.backbone.modules() if 'Conv' in type(m).__name__})
    out[name] = dict(model=type(model).__name__, backbone=type(model.backbone).__name__, convs=convs,
                     scope=cfg.model.get('_scope_'), default_scope=cfg.default_scope)
    if name == 'det':
        out[name]['num_classes'] = model.roi_head.bbox_head.num_classes
        out[name]['fc6'] = list(model.roi_head.bbox_head.shared_fcs[0].weight.shape)
"""
LOAD_SCRIPT = 'import json\n' + LOAD_CODE + 'print(json.dumps(out))\n'


def write_child_project(folder):
    os.makedirs(folder, exist_ok=True)
    for name, text in CHILD_CONFIGS.items():
        with open(osp.join(folder, name), 'w') as f:
            f.write(textwrap.dedent(text))


def load_child_configs(folder, pythonpath):
    """Run ``LOAD_SCRIPT`` in ``folder`` with only ``pythonpath`` ahead of the environment's packages."""
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', LOAD_SCRIPT], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_loaded(out):
    det, cls = out['det'], out['cls']
    assert (det['model'], det['backbone']) == ('FasterRCNN', 'ZF')
    assert 'PowConv' in det['convs']  # ZF-POW-1: the child got the quantized backbone of the base
    assert det['num_classes'] == 3 and det['fc6'] == [32, 256 * 6 * 6]  # and overrode the head
    assert (cls['model'], cls['backbone'], cls['convs']) == ('ImageClassifier', 'QuantResNet', ['PowConv'])
    # the plugin's components live in mmdet's registries: its configs carry mmdet's scope
    assert det['scope'] == cls['scope'] == 'mmdet' and det['default_scope'] == 'mmdet'


def test_config_in_another_folder_inherits_featquant_configs(tmp_path, monkeypatch):
    """In process, from the checkout (test_built_wheel_works_unpacked does the same in a fresh interpreter started in
    the other folder, from the wheel's copy of the package)."""
    project = tmp_path / 'my_project'
    write_child_project(str(project))
    monkeypatch.chdir(project)
    namespace = {}
    exec(LOAD_CODE, namespace)
    out = namespace['out']
    assert osp.dirname(out['package']) == osp.dirname(featquant_mmdet.__file__)
    check_loaded(out)


def test_package_config_paths_and_their_errors():
    assert config_path('featquant_mmdet::faster_rcnn_zf_voc.py') == config_path('faster_rcnn_zf_voc.py')
    assert osp.samefile(config_path('pretrain/zf_imagenet.py'), osp.join(REPO, 'configs', 'pretrain',
                                                                          'zf_imagenet.py'))
    with pytest.raises(FileNotFoundError, match=r"no config 'faster_rcnn_zf_nope.py' in featquant_mmdet's configs"):
        config_path('featquant_mmdet::faster_rcnn_zf_nope.py')
    with pytest.raises(FileNotFoundError, match='no config'):
        config_path('featquant_mmdet::../../setup.cfg')  # only files under the configs folder
    # the configs shipped in the package are the repository's
    shipped = sorted(osp.relpath(osp.join(d, f), package_config_dir())
                     for d, _, files in os.walk(package_config_dir(), followlinks=True) for f in files
                     if f.endswith('.py'))
    in_repo = sorted(osp.relpath(osp.join(d, f), osp.join(REPO, 'configs'))
                     for d, _, files in os.walk(osp.join(REPO, 'configs')) for f in files if f.endswith('.py'))
    assert shipped == in_repo and 'faster_rcnn_zf_pow1_voc.py' in shipped


def test_other_package_prefixes_still_go_to_mmengine(tmp_path):
    from mmengine.config import Config
    (tmp_path / 'c.py').write_text("_base_ = 'mmdet::_base_/default_runtime.py'\n")
    assert Config.fromfile(str(tmp_path / 'c.py')).default_scope == 'mmdet'
    (tmp_path / 'd.py').write_text("_base_ = 'nopkg::a/b.py'\n")
    with pytest.raises(AssertionError, match='mmengine does not support to load nopkg config'):
        Config.fromfile(str(tmp_path / 'd.py'))


REPO_FILES = ('featquant_mmdet', 'configs', 'tools', 'requirements', 'setup.cfg', 'pyproject.toml', 'README.md',
              'MANIFEST.in')
MIM = 'featquant_mmdet/.mim/'
NOT_SHIPPED = {'tools/setup_env.sh'}  # the checkout's environment script is not a user tool (setup.cfg excludes it)


def promised_files():
    """What ``featquant_mmdet/.mim`` promises (its ``configs`` and ``tools`` link to the repository's): every file
    under ``configs/`` and ``tools/`` but the checkout's environment script, as repository-relative paths."""
    files = set()
    for top in ('configs', 'tools'):
        for folder, subfolders, names in os.walk(osp.join(REPO, top)):
            subfolders[:] = [d for d in subfolders if d != '__pycache__']
            files |= {osp.relpath(osp.join(folder, n), REPO) for n in names if not n.endswith(('.pyc', '.pyo'))}
    return files - NOT_SHIPPED


def shipped_files(names):
    """Repository-relative paths of the ``.mim`` files among package-relative ``names``."""
    return {n[len(MIM):] for n in names if n.startswith(MIM)}


def package_data_patterns():
    setup = configparser.ConfigParser()
    setup.read(osp.join(REPO, 'setup.cfg'))
    patterns = [p.strip() for p in setup['options.package_data']['featquant_mmdet'].splitlines() if p.strip()]
    excluded = [p.strip() for p in setup['options.exclude_package_data']['featquant_mmdet'].splitlines() if p.strip()]
    return patterns, excluded


def expand_without_recursion(patterns, excluded):
    """The files setuptools < 62.3 takes for ``patterns``: ``glob.glob`` without ``recursive=True`` (``**`` is one
    folder level there), relative to the package folder, less ``excluded``."""
    import glob
    package = osp.dirname(featquant_mmdet.__file__)
    found = {osp.relpath(p, package) for pattern in patterns for p in glob.glob(osp.join(package, pattern))}
    dropped = {osp.relpath(p, package) for pattern in excluded for p in glob.glob(osp.join(package, pattern))}
    return {f[len('.mim/'):] for f in found - dropped if f.startswith('.mim/')}


def test_package_data_covers_every_config_and_tool_with_any_setuptools():
    """setup.cfg's package_data, expanded as setuptools before 62.3 does (no recursion): every promised file. The
    '**' globs it had before (recursive from setuptools 62.3 only) miss the configs two folders deep there."""
    patterns, excluded = package_data_patterns()
    promised = promised_files()
    assert expand_without_recursion(patterns, excluded) == promised
    assert 'configs/pretrain/_base_/datasets/imagenet_bs32.py' in promised and 'tools/slurm_train.sh' in promised
    old = ['.mim/configs/*.py', '.mim/configs/**/*.py', '.mim/tools/*.py', '.mim/tools/*.sh', '.mim/tools/**/*.py']
    missed = promised - expand_without_recursion(old, excluded)
    assert 'configs/_base_/models/faster_rcnn_zf.py' in missed and 'configs/pretrain/_base_/models/zf.py' in missed


def copy_repository(dest):
    """The files a build reads, copied (the checkout stays clean; the .mim links keep pointing into the copy)."""
    dest.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', 'build')
    for name in REPO_FILES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, dest / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy(path, dest / name)
    return dest


def pip(*args, timeout=300):
    proc = subprocess.run([sys.executable, '-m', 'pip', *map(str, args), '-q', '--disable-pip-version-check'],
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout[-2000:] + proc.stderr[-3000:]


def build_wheel(src, out, isolation):
    code, output = pip('wheel', '--no-deps', *([] if isolation else ['--no-build-isolation']), '-w', out, src)
    if code and isolation and re.search(r'No matching distribution found for (setuptools|wheel)', output):
        pytest.skip(f'build isolation needs setuptools>=62.3 and wheel from a package index: {output[-300:]}')
    assert code == 0, output
    wheels = os.listdir(out)
    assert len(wheels) == 1 and wheels[0].startswith('featquant_mmdet-')
    return str(out / wheels[0])


@pytest.fixture(scope='module')
def wheel_without_isolation(tmp_path_factory):
    """The wheel ``pip wheel --no-build-isolation`` builds (the environment's setuptools), once per module."""
    tmp = tmp_path_factory.mktemp('wheel')
    return build_wheel(copy_repository(tmp / 'src'), tmp / 'dist', isolation=False)


@pytest.mark.parametrize('isolation', [False, True], ids=['no-build-isolation', 'build-isolation'])
def test_built_wheel_ships_every_config_and_tool(wheel_without_isolation, tmp_path, isolation):
    """``pip wheel`` of a copy of the repository, with and without build isolation (without: the environment's
    setuptools): the wheel holds every file of configs/ and tools/ under featquant_mmdet/.mim."""
    wheel = build_wheel(copy_repository(tmp_path / 'src'), tmp_path / 'dist', True) if isolation \
        else wheel_without_isolation
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert shipped_files(names) == promised_files()
    assert 'featquant_mmdet/version_check.py' in names
    assert 'featquant_mmdet/ops/csrc/maps_cpu.cpp' in names  # the CPU maps kernel's source, built at first use


def test_no_build_isolation_install_carries_every_config_and_tool(tmp_path):
    """``pip install --no-build-isolation --target DIR .``, the cluster way: the installed package holds every config
    and tool, and a config two folders deep resolves its bases from the installed copy."""
    target = tmp_path / 'site'
    code, output = pip('install', '--no-deps', '--no-build-isolation', '--no-compile', '--target', target,
                       copy_repository(tmp_path / 'src'))
    assert code == 0, output
    package = target / 'featquant_mmdet'
    installed = {osp.relpath(osp.join(d, f), package) for d, _, files in os.walk(package) for f in files}
    assert shipped_files({'featquant_mmdet/' + f for f in installed}) == promised_files()
    assert not any(osp.islink(osp.join(d, x)) for d, dirs, files in os.walk(package) for x in dirs + files)


def test_built_wheel_works_unpacked(wheel_without_isolation, tmp_path):
    """The unpacked wheel alone serves ``featquant_mmdet::`` bases to a config of another project."""
    site = str(tmp_path / 'site')
    with zipfile.ZipFile(wheel_without_isolation) as zf:  # a pure-Python wheel: unpacking it is installing it
        zf.extractall(site)
    project = str(tmp_path / 'my_project')
    write_child_project(project)
    out = load_child_configs(project, site)
    assert out['package'] == osp.join(site, 'featquant_mmdet', '__init__.py')  # the wheel's copy, not the checkout
    check_loaded(out)


# ------------------------------------------------------------------------------------------- version ranges
def requirement_ranges(lines):
    """``{'mmcv': '>=2.0.0,<2.2.0', ...}`` of requirement lines."""
    ranges = {}
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if line:
            name = line.split('>', 1)[0].split('<', 1)[0].split('=', 1)[0].strip()
            ranges[name] = line[len(name):].replace(' ', '')
    return ranges


def test_mminstall_setup_cfg_and_the_import_check_give_the_same_ranges():
    expected = {p: version_check.accepted_range(p).replace(' ', '') for p in version_check.ACCEPTED_VERSIONS}
    with open(osp.join(REPO, 'requirements', 'mminstall.txt')) as f:
        assert requirement_ranges(f) == expected
    setup = configparser.ConfigParser()
    setup.read(osp.join(REPO, 'setup.cfg'))
    declared = requirement_ranges(setup['options']['install_requires'].splitlines()
                                  + setup['options.extras_require']['mim'].splitlines())
    assert {p: declared[p] for p in expected} == expected
    # and the pinned, tested versions lie in the ranges
    with open(osp.join(REPO, 'requirements', 'constraints.txt')) as f:
        pins = dict(line.split('==') for line in (x.split('#')[0].strip() for x in f) if '==' in line)
    version_check.check_dependency_versions(lambda p: pins[p])
    version_check.check_dependency_versions()  # the installed ones too (else importing the plugin had failed)


@pytest.mark.parametrize('package, version', [('mmcv', '2.2.0'), ('mmdet', '2.28.2'), ('mmengine', '1.0.0rc0'),
                                              ('mmdet', '3.4.0'), ('mmcv', '1.7.1')])
def test_version_out_of_range_names_package_version_and_range(package, version):
    installed = {**dict(mmcv='2.1.0', mmdet='3.3.0', mmengine='0.10.7'), package: version}
    with pytest.raises(version_check.IncompatibleVersionError) as exc:
        version_check.check_dependency_versions(installed.get)
    message = str(exc.value)
    assert f'{package} {version} is installed, featquant_mmdet needs {package}' \
           f'{version_check.accepted_range(package)}' in message
    assert message.count('is installed') == 1  # only the offending package is named
    assert isinstance(exc.value, ImportError)


def test_missing_package_is_named():
    with pytest.raises(version_check.IncompatibleVersionError,
                       match=r'^mmdet is not installed \(featquant_mmdet needs mmdet>=3\.0\.0, <3\.4\.0\)'):
        version_check.check_dependency_versions(dict(mmcv='2.1.0', mmengine='0.10.7').get)


def test_import_fails_with_the_version_error(subprocess_env):
    """``import featquant_mmdet`` with an mmengine the metadata reports as 1.1.0: the check's error, not a failure
    deep inside mmengine."""
    script = ("from importlib import metadata\n"
              "real = metadata.version\n"
              "metadata.version = lambda name: '1.1.0' if name == 'mmengine' else real(name)\n"
              "import featquant_mmdet\n")
    proc = subprocess.run([sys.executable, '-c', script], env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('featquant_mmdet.version_check.IncompatibleVersionError: mmengine 1.1.0 is installed, '
                           'featquant_mmdet needs mmengine>=0.10.0, <1.0.0'), proc.stderr[-2000:]


def test_version_key_orders_pre_releases_before_releases():
    key = version_check.version_key
    assert key('2.0.0rc4') < key('2.0.0') < key('2.0.1') < key('2.2.0')
    assert key('2.1') == key('2.1.0') == key('2.1.0+cu121') and key('1.0.0.dev0') < key('1.0.0')
    with pytest.raises(ValueError, match="cannot read the version 'latest'"):
        key('latest')
