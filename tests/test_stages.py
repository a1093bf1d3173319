"""The stage runner (featquant_mmdet.engine.stages): order and dependencies, markers and resume, parallel steps,
failures with the log's tail, the quiet console. Steps are tiny Python commands writing files."""
import io
import os.path as osp
import sys
import time

import pytest

from featquant_mmdet.engine.stages import Plan, StageError, StageRunner, Step, check_writable_folder, estimate_left


def writer(path, text='x', sleep=0.0, fail=False):
    """argv of a command that prints a line, waits, then writes ``text`` to ``path`` (or fails)."""
    code = (f'import time, sys; print("hello from the step"); print("details", file=sys.stderr); '
            f'time.sleep({sleep}); ' + ('sys.exit(3)' if fail else f'open({str(path)!r}, "w").write({text!r})'))
    return [sys.executable, '-c', code]


def chain(tmp_path, calls, text='x', fail=None):
    """a -> b -> c, each writing its file; b and c read nothing (their deps are order only)."""
    def step(name, deps):
        def plan():
            calls.append(name)
            return Plan(writer(tmp_path / f'{name}.txt', text, fail=name == fail), [str(tmp_path / f'{name}.txt')],
                        log_dir=str(tmp_path / 'logs'))
        return Step(name, plan, deps, title=f'step {name}')
    return [step('a', ()), step('b', ('a', )), step('c', ('b', ))]


def test_steps_run_in_dependency_order_and_a_rerun_reuses_them(tmp_path):
    calls, out = [], io.StringIO()
    timings = StageRunner(chain(tmp_path, calls), str(tmp_path / 'state'), out=out).run()
    assert calls == ['a', 'b', 'c'] and [timings[n]['status'] for n in 'abc'] == ['ran'] * 3
    console = out.getvalue()
    assert console.count(' done in ') == 3 and 'hello from the step' not in console  # the output went to the logs
    assert 'progress: 3/3 steps done' in console
    log = (tmp_path / 'logs' / 'b.log').read_text()
    assert log.startswith('$ ') and 'hello from the step' in log and 'details' in log
    out = io.StringIO()
    timings = StageRunner(chain(tmp_path, []), str(tmp_path / 'state'), out=out).run()
    assert [timings[n]['status'] for n in 'abc'] == ['skipped'] * 3
    assert out.getvalue().count('-- skipped, done on') == 3


def test_a_changed_step_is_redone_with_what_depends_on_it(tmp_path):
    StageRunner(chain(tmp_path, []), str(tmp_path / 'state'), out=io.StringIO()).run()
    (tmp_path / 'a.txt').unlink()  # an output gone: a is redone, and b and c after it (their deps changed)
    timings = StageRunner(chain(tmp_path, []), str(tmp_path / 'state'), out=io.StringIO()).run()
    assert [timings[n]['status'] for n in 'abc'] == ['ran'] * 3
    steps = chain(tmp_path, [], text='other')  # another command for every step
    timings = StageRunner(steps, str(tmp_path / 'state'), out=io.StringIO()).run()
    assert [timings[n]['status'] for n in 'abc'] == ['ran'] * 3 and (tmp_path / 'c.txt').read_text() == 'other'


def test_failure_names_the_log_shows_its_tail_and_the_rerun_continues(tmp_path):
    out = io.StringIO()
    with pytest.raises(StageError) as err:
        StageRunner(chain(tmp_path, [], fail='b'), str(tmp_path / 'state'), out=out).run()
    message = str(err.value)
    assert message.startswith('step b failed: the command exited with status 3')
    assert f'last lines of its log {tmp_path / "logs" / "b.log"}:' in message and 'details' in message
    assert 'rerun the same command' in message and 'b FAILED (status 3)' in out.getvalue()
    assert not (tmp_path / 'c.txt').exists()  # nothing after the failed step ran
    calls = []
    timings = StageRunner(chain(tmp_path, calls), str(tmp_path / 'state'), out=io.StringIO()).run()
    assert calls == ['a', 'b', 'c'] and timings['a']['status'] == 'skipped' and timings['b']['status'] == 'ran'


def test_independent_steps_run_side_by_side(tmp_path):
    steps = [Step(n, lambda n=n: Plan(writer(tmp_path / n, sleep=1.0), [str(tmp_path / n)])) for n in ('x', 'y')]
    start = time.perf_counter()
    timings = StageRunner(steps, str(tmp_path / 'state'), jobs=2, out=io.StringIO()).run()
    assert time.perf_counter() - start < 1.9  # both slept 1 s at once
    assert timings['x']['wall_s'] >= 1.0 and timings['y']['wall_s'] >= 1.0


def test_in_process_step_and_missing_outputs(tmp_path):
    info = []
    step = Step('inline', lambda: Plan(outputs=[str(tmp_path / 'made')]),
                after=lambda: info.append(1) or (tmp_path / 'made').write_text('y') and {'extra': 5})
    StageRunner([step], str(tmp_path / 'state'), out=io.StringIO()).run()
    assert info == [1] and '"extra": 5' in (tmp_path / 'state' / 'inline.json').read_text()
    lazy = Step('lazy', lambda: Plan(writer(tmp_path / 'other'), [str(tmp_path / 'not_written')]))
    with pytest.raises(StageError, match=r"step lazy finished but did not write \[.*not_written'\] \(log: "):
        StageRunner([lazy], str(tmp_path / 'state'), out=io.StringIO()).run()
    assert not osp.exists(tmp_path / 'state' / 'lazy.json')


def test_bad_step_lists_and_folders_are_errors(tmp_path):
    plan = lambda: Plan()  # noqa: E731
    with pytest.raises(StageError, match=r"duplicate names \['a'\], unknown dependencies \['z'\]"):
        StageRunner([Step('a', plan), Step('a', plan, ('z', ))], str(tmp_path))
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(StageError, match='cannot write to the work folder .* pass --work-dir'):
        check_writable_folder(str(blocker / 'sub'), 'work folder', '--work-dir')


KILLED_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from featquant_mmdet.engine.stages import Plan, StageRunner, Step
root = sys.argv[2]
slow = [sys.executable, '-c', 'import time; time.sleep(60)']
fast = [sys.executable, '-c', f'open({root!r} + "/a.txt", "w").write("a")']
StageRunner([Step('a', lambda: Plan(fast, [root + '/a.txt'])), Step('b', lambda: Plan(slow, [root + '/b.txt']), ['a'])],
            root + '/state').run()
"""


def test_a_killed_run_loses_only_the_running_step(tmp_path, repo_root):
    import os
    import signal
    import subprocess
    proc = subprocess.Popen([sys.executable, '-c', KILLED_RUNNER, repo_root, str(tmp_path)], start_new_session=True,
                            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / 'state' / 'b.log').exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / 'state' / 'a.json').exists()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its running command, as a crash would
        proc.wait()
    root = str(tmp_path)
    fast = [sys.executable, '-c', f'open({root!r} + "/a.txt", "w").write("a")']  # the killed run's step a
    steps = [Step('a', lambda: Plan(fast, [root + '/a.txt'])),
             Step('b', lambda: Plan(writer(tmp_path / 'b.txt'), [str(tmp_path / 'b.txt')]), ['a'])]
    timings = StageRunner(steps, str(tmp_path / 'state'), out=io.StringIO()).run()
    assert timings['a']['status'] == 'skipped' and timings['b']['status'] == 'ran'


def test_time_left_uses_the_finished_steps_rate_the_running_steps_progress_and_the_jobs():
    assert estimate_left([], [(100.0, 30.0)], [100.0], jobs=2) is None  # nothing ran yet: no rate
    # 0.9 s per unit; the running step has 90 - 30 = 60 s left, the pending ones 90 + 180; two at a time
    assert estimate_left([(100.0, 90.0)], [(100.0, 30.0)], [100.0, 200.0], jobs=2) == pytest.approx((60 + 270) / 2)
    # one step left: one job works, however many are allowed; a step past its expected time counts 0
    assert estimate_left([(10.0, 5.0)], [(10.0, 8.0)], [], jobs=4) == pytest.approx(0.0)
    assert estimate_left([(10.0, 5.0)], [], [10.0], jobs=4) == pytest.approx(5.0)


def test_time_left_leaves_out_the_steps_a_resumed_run_will_skip(tmp_path):
    def step(name, weight, sleep=0.0):
        return Step(name, lambda: Plan(writer(tmp_path / f'{name}.txt', sleep=sleep), [str(tmp_path / f'{name}.txt')],
                                       log_dir=str(tmp_path / 'logs')), weight=weight)
    state = str(tmp_path / 'state')
    StageRunner([step('old', 1000.0)], state, out=io.StringIO()).run()
    # resumed with two new steps before it: while 'second' runs, 'old' is still pending in the list but done
    steps = [step('first', 1.0, sleep=0.5), step('second', 1.0, sleep=0.5), step('old', 1000.0)]
    runner = StageRunner(steps, state, jobs=1, out=io.StringIO())
    assert list(runner.find_reused()) == ['old']
    timings = runner.run()
    assert [timings[n]['status'] for n in ('first', 'second', 'old')] == ['ran', 'ran', 'skipped']
    line = next(li for li in runner.out.getvalue().splitlines() if li.startswith('progress: 1/3'))
    # 'second' has about first's wall time left; counting 'old' (weight 1000) would say 1000 times that
    hours, minutes, seconds = map(int, line.split('about ')[1].split(' left')[0].split(':'))
    assert hours * 3600 + minutes * 60 + seconds <= 2 * timings['first']['wall_s'] + 1, line


def test_step_numbers_count_the_steps_that_ended_not_the_plan_order(tmp_path):
    def step(name, sleep):
        return Step(name, lambda: Plan(writer(tmp_path / f'{name}.txt', sleep=sleep), [str(tmp_path / f'{name}.txt')],
                                       log_dir=str(tmp_path / 'logs')))
    out = io.StringIO()
    StageRunner([step('slow', 1.5), step('fast', 0.0)], str(tmp_path / 'state'), jobs=2, out=out).run()
    ended = [line.split(' done in ')[0] for line in out.getvalue().splitlines() if ' done in ' in line]
    assert ended == ['[1/2] fast', '[2/2] slow']
    # the progress line after a step ends names what runs then (not 'nothing' before the next step has started)
    progress = [line for line in out.getvalue().splitlines() if line.startswith('progress:')]
    assert progress[0].startswith('progress: 1/2 steps done, running slow;') and len(progress) == 2, progress
