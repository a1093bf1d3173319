"""PowConv with the maps of an earlier commit against the current ones, side by side in one process.

The earlier ``featquant_mmdet/ops/quantize.py`` (``git show REV:...``) is loaded as a second module of the package
and the layers call its ``signed_power`` or the current one in interleaved rounds; both are timed as PowConv forward
+ backward and reported as ratios to ``nn.Conv2d`` of the same shape (the shapes of bench_quant_conv_gpu.py).

    python benchmarks/bench_map_revision.py [--ref fbfec73] [--threads 2] [--repeats 21] [--device cpu]
                                            [--malloc {tuned,system}]

``--ref`` defaults to the previous version of quantize.py (the commit before the last one that changed it).
"""
import argparse
import importlib.util
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import featquant_mmdet.layers.quant_conv as quant_conv  # noqa: E402
from featquant_mmdet.layers import PowConv  # noqa: E402
from featquant_mmdet.malloc import SETTINGS, tune_malloc  # noqa: E402
from featquant_mmdet.ops import quantize as current  # noqa: E402

SHAPES = [  # name, in, out, height, width (bench_quant_conv_gpu.py)
    ('ZF conv3', 256, 384, 38, 63), ('ZF conv4', 384, 384, 38, 63), ('ZF conv5', 384, 256, 38, 63),
    ('R50 layer1 3x3', 64, 64, 56, 56), ('R50 layer2 3x3', 128, 128, 28, 28), ('R50 layer3 3x3', 256, 256, 14, 14),
    ('R50 layer4 3x3', 512, 512, 7, 7)]


def previous_revision() -> str:
    """The commit before the last one that changed quantize.py (the map's previous version)."""
    try:
        commits = subprocess.run(['git', 'log', '-n', '2', '--format=%h', '--', 'featquant_mmdet/ops/quantize.py'],
                                 cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        raise ValueError(f'no git history here to find the previous map ({err}); give --ref') from None
    if len(commits) < 2:
        raise ValueError('quantize.py has no earlier version in this history; give --ref')
    return commits[1]


def load_revision(rev: str):
    """``featquant_mmdet/ops/quantize.py`` at ``rev`` as the module ``featquant_mmdet.ops._quantize_<rev>`` (its
    relative imports resolve to the current package)."""
    try:
        source = subprocess.run(['git', 'show', f'{rev}:featquant_mmdet/ops/quantize.py'], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        detail = (getattr(err, 'stderr', '') or str(err)).strip().splitlines()[-1]
        raise ValueError(f'--ref {rev}: no featquant_mmdet/ops/quantize.py there ({detail})') from None
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(source)
    name = f'featquant_mmdet.ops._quantize_{rev}'
    spec = importlib.util.spec_from_file_location(name, f.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ref', default=None, help='the earlier commit (any git revision; default: the previous '
                        'version of featquant_mmdet/ops/quantize.py)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU)')
    parser.add_argument('--repeats', type=int, default=21, help='timed rounds (median)')
    parser.add_argument('--malloc', default=None, choices=SETTINGS, help='glibc malloc settings (default: tuned)')
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible')
    try:
        args.ref = args.ref or previous_revision()
        reference = load_revision(args.ref)
    except ValueError as err:
        parser.error(str(err))
    malloc = tune_malloc(args.malloc)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fused = False if device.type == 'cpu' else None  # the CPU's default path: eager
    print(f'torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, malloc: {malloc}; '
          f'median of {args.repeats}; PowConv fwd+bwd / nn.Conv2d, batch 2; ref = {args.ref}, now = this tree')
    print(f'{"shape":<16} {"conv ms":>8} {"L=1 ref":>8} {"L=1 now":>8} {"L=4 ref":>8} {"L=4 now":>8}')
    for name, cin, cout, h, w in SHAPES:
        torch.manual_seed(0)
        x = F.relu(torch.randn(2, cin, h, w, device=device)).requires_grad_()
        g = torch.randn(2, cout, h, w, device=device)
        plain = nn.Conv2d(cin, cout, 3, padding=1).to(device)
        layers = {lam: PowConv(cin, cout, 3, padding=1, num_portions=lam, fused=fused).to(device) for lam in (1, 4)}
        for m in layers.values():
            with torch.no_grad():  # away from 0 so that the power does real work
                m.alpha.copy_(torch.rand(m.alpha.shape) - 0.5)

        def step(module, ops):
            def run():
                quant_conv.signed_power = ops.signed_power
                module(x).backward(g)
                x.grad = None
                for p in module.parameters():
                    p.grad = None
                if device.type == 'cuda':
                    torch.cuda.synchronize()
            return run

        steps = {'plain': step(plain, current)}
        for lam, m in layers.items():
            steps[f'L={lam} ref'], steps[f'L={lam} now'] = step(m, reference), step(m, current)
        times = {k: [] for k in steps}
        for run in steps.values():
            run()
        for _ in range(args.repeats):
            for k, run in steps.items():
                t0 = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f'{name:<16} {med["plain"] * 1e3:8.2f} ' + ' '.join(
            f'{med[k] / med["plain"]:8.3f}' for k in ('L=1 ref', 'L=1 now', 'L=4 ref', 'L=4 now')))
    quant_conv.signed_power = current.signed_power


if __name__ == '__main__':
    main()
