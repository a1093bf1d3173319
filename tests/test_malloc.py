"""glibc malloc settings for CPU runs (featquant_mmdet/malloc.py): the setting, its effect, and the tools applying it.

mallopt changes the whole process, so every effect is checked in a fresh subprocess.
"""
import ctypes
import os
import os.path as osp
import subprocess
import sys

import pytest

from featquant_mmdet.malloc import ENV_VAR, resolve_setting

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HAS_GLIBC = hasattr(ctypes.CDLL(None), 'gnu_get_libc_version')
HAS_MALLINFO2 = hasattr(ctypes.CDLL(None), 'mallinfo2')

# Allocates a 16 MiB tensor and prints how many bytes glibc holds in mmapped blocks meanwhile (mallinfo2().hblkhd).
MEASURE = '''
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                                     'fsmblks', 'uordblks', 'fordblks', 'keepcost')]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblkhd
t = torch.empty(4 * 1024 * 1024)  # 16 MiB
t.fill_(1.0)
print(libc.mallinfo2().hblkhd - before)
'''

# tune_malloc() in a new process, then MEASURE. featquant_mmdet.malloc alone (torch only, as its docstring says): the
# package object stands in without running its __init__, which registers every mmdet component (3x the start-up).
PROBE = '''
import ctypes, os.path as osp, sys, types
package = types.ModuleType('featquant_mmdet')
package.__path__ = [osp.join({repo!r}, 'featquant_mmdet')]
sys.modules['featquant_mmdet'] = package
import torch
from featquant_mmdet.malloc import tune_malloc

print(tune_malloc())
''' + MEASURE


def run_probe(setting):
    env = dict(os.environ)
    env.pop(ENV_VAR, None)
    if setting is not None:
        env[ENV_VAR] = setting
    proc = subprocess.run([sys.executable, '-c', PROBE.format(repo=REPO)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    applied, mmapped = proc.stdout.split()
    return applied, int(mmapped)


def test_setting_defaults_to_tuned_and_refuses_unknown_values(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_setting() == 'tuned'
    assert resolve_setting(' System ') == 'system'
    monkeypatch.setenv(ENV_VAR, 'fast')
    with pytest.raises(ValueError, match=r"FEATQUANT_MALLOC='fast': accepted are tuned \(the default\) or system"):
        resolve_setting()


# A new process as tools/train.py starts one: build_runner (which applies the setting, FEATQUANT_MALLOC unset), then
# PROBE's measurement of a 16 MiB tensor (-1 without mallinfo2). Shared by the two tests below: one package import.
RUNNER = '''
import ctypes, sys
sys.path.insert(0, {repo!r})
import torch
from featquant_mmdet import malloc
from featquant_mmdet.engine.loading import build_runner, load_config
assert malloc._applied is None
cfg = load_config({config!r})
cfg.work_dir = sys.argv[1]
build_runner(cfg)
print(malloc._applied)
if not hasattr(ctypes.CDLL(None), 'mallinfo2'):
    print(-1)
    raise SystemExit
''' + MEASURE


@pytest.fixture(scope='module')
def runner_process(tmp_path_factory):
    """(the setting build_runner applied, bytes mmapped for a 16 MiB tensor afterwards) in a new process."""
    script = RUNNER.format(repo=REPO, config=osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'))
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run([sys.executable, '-c', script, str(tmp_path_factory.mktemp('runner'))], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    applied, mmapped = proc.stdout.strip().splitlines()[-2:]
    return applied, int(mmapped)


@pytest.mark.skipif(not HAS_MALLINFO2, reason='needs glibc >= 2.33 (mallinfo2)')
def test_tuned_serves_a_16_mib_tensor_from_the_heap_and_system_maps_it(runner_process):
    """The default (tuned, as build_runner applies it in a new process) and FEATQUANT_MALLOC=system (PROBE)."""
    applied, mmapped = runner_process
    assert applied == 'tuned' and mmapped < 1024 * 1024, mmapped  # below M_MMAP_THRESHOLD = 32 MiB: the heap
    applied, mmapped = run_probe('system')
    assert applied == 'system' and mmapped >= 16 * 1024 * 1024, mmapped  # glibc's own threshold: a fresh mmap


def test_build_runner_applies_it(runner_process):
    assert runner_process[0] == ('tuned' if HAS_GLIBC else 'system (no glibc)')


@pytest.mark.parametrize('tool,args', [('train', ['configs/faster_rcnn_zf_voc.py']),
                                       ('test', ['configs/faster_rcnn_zf_voc.py', 'missing.pth'])])
@pytest.mark.parametrize('variable,value', [(ENV_VAR, 'fast'), ('FEATQUANT_FUSED_MAPS', 'maybe')])
def test_tools_refuse_a_bad_environment_setting_in_one_line(tool, args, variable, value, load_tool, monkeypatch,
                                                            capsys):
    """The tool's main() with the arguments a user types (the settings are read when they are parsed, not at
    import): a usage error, exit status 2, and nothing else raised."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(sys, 'argv', [osp.join(REPO, 'tools', f'{tool}.py')])
    with pytest.raises(SystemExit) as refused:
        load_tool(tool).main([osp.join(REPO, arg) for arg in args])
    assert refused.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f'{tool}.py: error: ') and f'{variable}={value!r}: accepted are' in last
