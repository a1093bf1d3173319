"""The CPU maps kernel alone: an earlier commit's ``csrc/maps_cpu.cpp`` against the current one, side by side.

Both sources are built with torch's extension loader (the earlier one under its own name: about 25 s once, then
cached in ``TORCH_EXTENSIONS_DIR`` like the kernel), and their forward and backward are timed in interleaved rounds
on the layers' layout (x (2, C, H*W), exponents (1, Lambda, C)) at the shapes of bench_quant_conv_gpu.py, warm (the
same call back to back) and cold (after writing 32 MB elsewhere, so that the inputs come from memory, as after a
convolution)::

    python benchmarks/bench_native_kernel.py [--ref 6d9e5c2] [--threads 2] [--repeats 51]

``--ref`` defaults to the previous version of maps_cpu.cpp. Its first version (up to 6d9e5c2) named the functions
``power_forward``/``power_backward`` and its backward read y; later ones ``forward_kernel``/``backward_kernel``.
"""
import argparse
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from featquant_mmdet.malloc import tune_malloc  # noqa: E402
from featquant_mmdet.ops import native  # noqa: E402

SOURCE = 'featquant_mmdet/ops/csrc/maps_cpu.cpp'
SHAPES = [('ZF conv3', 256, 38 * 63), ('ZF conv5', 384, 38 * 63), ('R50 layer1', 64, 56 * 56),
          ('R50 layer2', 128, 28 * 28), ('R50 layer3', 256, 14 * 14), ('R50 layer4', 512, 7 * 7)]


def git(*args) -> str:
    try:
        return subprocess.run(['git', *args], cwd=REPO, check=True, capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        detail = (getattr(err, 'stderr', '') or str(err)).strip().splitlines()[-1:]
        raise ValueError(f'git {" ".join(args)}: {detail[0] if detail else err}') from None


def previous_revision() -> str:
    commits = git('log', '-n', '2', '--format=%h', '--', SOURCE).split()
    if len(commits) < 2:
        raise ValueError(f'{SOURCE} has no earlier version in this history; give --ref')
    return commits[1]


class Kernel:
    """forward(x, alpha) -> y and backward(x, alpha, y, grad_y) of one build, whatever its function names."""

    def __init__(self, module):
        self.module = module
        self.first_version = hasattr(module, 'power_forward')

    def forward(self, x, alpha):
        fn = self.module.power_forward if self.first_version else self.module.forward_kernel
        return fn(x, alpha, None, -1.0, 5.0)

    def backward(self, x, alpha, y, grad_y):
        if self.first_version:
            return self.module.power_backward(x, alpha, None, y, grad_y, True, True, -1.0, 5.0)
        return self.module.backward_kernel(x, alpha, None, grad_y, True, True, -1.0, 5.0)


def build_revision(rev: str) -> Kernel:
    from torch.utils import cpp_extension
    source = git('show', f'{rev}:{SOURCE}')
    commit = git('rev-parse', '--short', rev).strip()
    name = f'featquant_maps_cpu_ref_{commit}_{native.torch_tag()}'
    directory = cpp_extension._get_build_directory(name, verbose=False)  # cached like the kernel itself
    path = osp.join(directory, 'maps_cpu.cpp')
    capability = native._capability()
    flags = ['-O3', '-fno-math-errno', '-fno-trapping-math', '-fopenmp', *native._ARCH_FLAGS.get(capability, [])]
    ldflags = ['-fopenmp'] + (['-lmvec'] if 'libmvec' in source else [])
    print(f'building (or loading) {SOURCE} at {commit} in {directory}', file=sys.stderr, flush=True)
    with native.exclusive(directory):  # the kernel's own lock: no stale-lock hang on torch < 2.14
        with open(path, 'w') as f:
            f.write(source)
        module = cpp_extension.load(name=name, sources=[path], extra_cflags=flags,
                                    extra_ldflags=ldflags, build_directory=directory, verbose=False)
    return Kernel(module)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ref', default=None, help=f'the earlier commit (default: the previous version of {SOURCE})')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--repeats', type=int, default=51, help='timed rounds (median)')
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    if not native.available():
        parser.error(f'the current kernel cannot be built here: {native._state.get("error")}')
    try:
        args.ref = args.ref or previous_revision()
        reference = build_revision(args.ref)
    except ValueError as err:
        parser.error(str(err))
    current = Kernel(native.extension())
    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    flush = torch.zeros(8 * 1024 * 1024)  # 32 MB: evicts L2 and most of L3
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}, batch 2; '
          f'us; ref = {args.ref}, now = this tree')
    print(f'{"shape":<12} {"L":>2} {"":<5} {"fwd ref":>8} {"fwd now":>8} {"bwd ref":>8} {"bwd now":>8}')
    for name, channels, size in SHAPES:
        for portions in (1, 4):
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(2, channels, size, generator=gen).relu_()
            alpha = torch.rand(1, portions, channels, generator=gen) - 0.5
            y = current.forward(x, alpha)
            grad_y = torch.randn(y.shape, generator=gen)
            kernels = (('ref', reference), ('now', current))
            calls = {f'fwd {k}': (lambda kernel=kernel: kernel.forward(x, alpha)) for k, kernel in kernels}
            calls.update({f'bwd {k}': (lambda kernel=kernel: kernel.backward(x, alpha, y, grad_y))
                          for k, kernel in kernels})
            for mode in ('warm', 'cold'):
                times = {k: [] for k in calls}
                for call in calls.values():
                    call()
                for _ in range(args.repeats):
                    for k, call in calls.items():
                        if mode == 'cold':
                            flush.add_(1.0)
                        t0 = time.perf_counter()
                        call()
                        times[k].append(time.perf_counter() - t0)
                med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
                print(f'{name:<12} {portions:>2} {mode:<5} ' + ' '.join(
                    f'{med[k]:8.0f}' for k in ('fwd ref', 'fwd now', 'bwd ref', 'bwd now')))


if __name__ == '__main__':
    main()
