"""Memory and time of the HPOW exponent summary (``tools/analysis/alpha_report.py --num-images N``) as N doubles.

The per-image exponents of ``configs/pretrain/resnet50_hpow_imagenet.py``'s HPowConv layers (their (Lambda, C)
read off the built model: 16 layers, 3776 exponents per image) are generated in batches of 32 images (a logistic
of normal draws, inside (-1, 5) as HPOW's) and summarised two ways, each (method, N) in its own process:

- ``exact``: every batch kept, concatenated per layer, then ``summarize_exponents`` on the tensors (the tool's
  path until session 29: memory grows with N);
- ``streamed``: each batch added to a ``StreamedExponents`` per layer as it arrives (the tool's path now).

Reported per (method, N): wall time and the process's peak resident memory above its level after imports.

    python benchmarks/bench_alpha_report.py [--sizes 1000 2000 4000 8000] [--streamed-sizes 50000]
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
CONFIG = osp.join(REPO, 'configs', 'pretrain', 'resnet50_hpow_imagenet.py')
BATCH = 32


def layer_shapes():
    from mmdet.registry import MODELS

    import featquant_mmdet  # noqa: F401  (registers the models)
    from featquant_mmdet.engine.loading import load_config
    from featquant_mmdet.layers.quant_conv import HPowConv
    model = MODELS.build(load_config(CONFIG).model)
    return {name: (m.num_portions, m.in_channels) for name, m in model.named_modules() if isinstance(m, HPowConv)}


def status_mb(key):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024  # kB


def reset_peak():
    """Linux: writing 5 to clear_refs resets the peak resident size (VmHWM) to the current one."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def one(method, num_images, shapes):
    import numpy as np
    import torch

    from featquant_mmdet.analysis.alpha_report import summarize_exponents
    from featquant_mmdet.analysis.exponent_stats import StreamedExponents
    rng = np.random.default_rng(0)
    reset_peak()
    base = status_mb('VmRSS')
    start = time.perf_counter()
    kept = {name: [] if method == 'exact' else StreamedExponents() for name in shapes}
    for first in range(0, num_images, BATCH):
        n = min(BATCH, num_images - first)
        for name, (portions, channels) in shapes.items():
            z = rng.normal(-0.3, 0.5, (n, portions, channels)).astype(np.float32)
            batch = torch.from_numpy(-1 + 6 / (1 + np.exp(-z)))
            if method == 'exact':
                kept[name].append(batch)
            else:
                kept[name].add(batch)
    if method == 'exact':
        kept = {name: torch.cat(chunks) for name, chunks in kept.items()}
    table = summarize_exponents(kept)
    return dict(method=method, images=num_images, seconds=time.perf_counter() - start, peak_mb=status_mb('VmHWM') - base,
                median=table['all layers']['median'], std_images=table['all layers']['std_images'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='example:\n  python benchmarks/bench_alpha_report.py --sizes 1000 2000 '
                                            '4000 8000 --streamed-sizes 16000 50000')
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 2000, 4000, 8000],
                        help='numbers of images for both methods')
    parser.add_argument('--streamed-sizes', type=int, nargs='*', default=[50000],
                        help='further numbers of images for the streamed method only')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], int(args.child[1]), json.loads(sys.stdin.read()))))
        return
    shapes = layer_shapes()
    print(f'{len(shapes)} HPowConv layers, {sum(p * c for p, c in shapes.values())} exponents per image '
          f'({osp.basename(CONFIG)})')
    print('| method | images | wall s | peak memory above imports (MB) | median | std_images |')
    print('|---|---:|---:|---:|---:|---:|')
    runs = [(m, n) for n in args.sizes for m in ('exact', 'streamed')] + [('streamed', n) for n in args.streamed_sizes]
    for method, n in runs:
        out = subprocess.run([sys.executable, __file__, '--child', method, str(n)], input=json.dumps(shapes),
                             capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f'| {method} | {n} | {r["seconds"]:.1f} | {r["peak_mb"]:.0f} | {r["median"]:.5f} | '
              f'{r["std_images"]:.6f} |', flush=True)


if __name__ == '__main__':
    main()
