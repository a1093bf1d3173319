"""Every tool's ``--help``: exit 0, a usage line, an example, and its subcommands listed.

The tools are the Python scripts found under tools/ (a new one is covered without editing this file). One
subprocess runs all of them, each as ``python TOOL --help`` would (``runpy`` with ``__name__ == '__main__'`` and
``sys.argv`` set), so that mmdet is imported once; a tool's subcommands are the keys of its ``SUBCOMMANDS``, and each
gets ``TOOL SUBCOMMAND --help`` too.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True))

RUN_HELP = textwrap.dedent('''
    import contextlib, io, json, runpy, sys

    def run(argv):
        out, err, code = io.StringIO(), io.StringIO(), None
        saved = list(sys.argv), list(sys.path)
        sys.argv = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(argv[0], run_name='__main__')
            except SystemExit as exit_:
                code = exit_.code
            except BaseException as error:  # reported, not raised: the other tools still run
                code = f'{type(error).__name__}: {error}'
        sys.argv, sys.path[:] = saved
        return dict(code=code, out=out.getvalue(), err=err.getvalue())

    results = {}
    for tool in sys.argv[1:]:
        results[tool] = run([tool, '--help'])
        subcommands = runpy.run_path(tool, run_name='featquant_help_check').get('SUBCOMMANDS', {})
        results[tool]['subcommands'] = {name: run([tool, name, '--help']) for name in subcommands}
    print(json.dumps(results))
''')


@pytest.fixture(scope='module')
def helps():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.setdefault('OMP_NUM_THREADS', '2')  # as conftest's subprocess_env (a function-scoped fixture)
    proc = subprocess.run([sys.executable, '-c', RUN_HELP, *TOOLS], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_help(result, what):
    assert result['code'] == 0, f'{what}: exit {result["code"]!r}\n{result["err"][-2000:]}'
    text = result['out']
    assert text.startswith('usage: '), f'{what}: no usage line\n{text[:500]}'
    assert re.search(r'^examples?:$', text, re.MULTILINE | re.IGNORECASE), f'{what}: no "Example" section\n{text}'
    assert re.search(r'^\s+(python|bash) tools/', text, re.MULTILINE), f'{what}: no example command\n{text}'


def test_the_tools_are_found():
    assert len(TOOLS) >= 17 and 'tools/train.py' in TOOLS and 'tools/analysis/alpha_report.py' in TOOLS


@pytest.mark.parametrize('tool', TOOLS)
def test_help_has_usage_and_an_example_and_lists_the_subcommands(tool, helps):
    result = helps[tool]
    check_help(result, tool)
    for name, sub in result['subcommands'].items():
        assert re.search(rf'^\s+{name}\b', result['out'], re.MULTILINE), f'{tool} --help does not list {name}'
        check_help(sub, f'{tool} {name}')


def test_alpha_report_has_its_two_subcommands(helps):
    assert set(helps['tools/analysis/alpha_report.py']['subcommands']) == {'trajectory', 'drift'}


def test_help_of_a_tool_run_as_a_script(subprocess_env):
    """The same text from a real ``python tools/... --help`` (the one-process run above stands for it)."""
    proc = subprocess.run([sys.executable, osp.join('tools', 'analysis', 'alpha_report.py'), '--help'], cwd=REPO,
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith('usage: alpha_report.py')
    assert '  trajectory RUN [RUN ...]' in proc.stdout and '  drift CONFIG' in proc.stdout
