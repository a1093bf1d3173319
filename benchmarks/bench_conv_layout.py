"""Lambda > 1 on the CPU: does a channels-last (NHWC) grouped convolution beat the NCHW one the layers run?

PowConv with Lambda = 4 runs one ``groups=4`` convolution over the four mapped copies of its input (docs/speed.md);
at ResNet-50 layer1 that convolution alone is 1.15-1.3x of the plain one in NCHW, run to run. This measures, side by side in
one process (each round times every row once, medians; fwd + bwd, batch 2, float32), against ``nn.Conv2d`` on
the NCHW input:

- ``grouped NCHW`` / ``grouped NHWC``: the ``groups=4`` convolution alone, input, weight and output gradient
  already in that layout (``aten.convolution`` and ``aten.convolution_backward``, no conversions);
- ``PowConv L=4``: the layer as shipped (the C++ map writes the four copies in NCHW);
- ``NCHW step, copies``: the layer's step with the map replaced by a concatenation of four copies of x (the bytes
  the map writes; its backward sums them as the map's does), grouped NCHW convolution through autograd;
- ``NHWC step, copies``: the same in channels-last, i.e. what a map writing NHWC copies could give: x converted to
  NHWC, four copies concatenated, the grouped NHWC convolution, the output converted back to NCHW (the layer's
  contract: output layout = input layout).

    python benchmarks/bench_conv_layout.py --threads 2 --repeats 21     # about 35 s on 2 cores
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bench_quant_conv_gpu import SHAPES  # noqa: E402
from featquant_mmdet.layers import PowConv  # noqa: E402
from featquant_mmdet.malloc import SETTINGS, tune_malloc  # noqa: E402

PORTIONS = 4
NHWC = torch.channels_last


def _raw_grouped(x4: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, layout):
    x4, weight, grad = (t.contiguous(memory_format=layout) for t in (x4, weight, grad))
    args = ([1, 1], [1, 1], [1, 1], False, [0, 0], PORTIONS)

    def step():
        torch.ops.aten.convolution(x4, weight, None, *args)
        torch.ops.aten.convolution_backward(grad, x4, weight, None, *args, [True, True, False])
    return step


def cases(cin: int, cout: int, height: int, width: int, batch: int):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, height, width, generator=generator).relu_().requires_grad_()
    grad = torch.randn(batch, cout, height, width, generator=generator)
    x4 = torch.randn(batch, PORTIONS * cin, height, width, generator=generator)
    plain = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    layer = PowConv(cin, cout, 3, padding=1, bias=False, num_portions=PORTIONS)
    weight = plain.weight.detach()

    def reset():
        x.grad = None
        plain.zero_grad(set_to_none=True)
        layer.zero_grad(set_to_none=True)

    def conv():
        plain(x).backward(grad)

    def powconv():
        layer(x).backward(grad)

    def nchw_step():
        copies = torch.cat([x] * PORTIONS, 1)
        F.conv2d(copies, layer.weight, None, 1, 1, 1, PORTIONS).backward(grad)

    def nhwc_step():
        copies = torch.cat([x.contiguous(memory_format=NHWC)] * PORTIONS, 1)
        out = F.conv2d(copies, layer.weight.contiguous(memory_format=NHWC), None, 1, 1, 1, PORTIONS)
        out.contiguous().backward(grad)

    return {'nn.Conv2d': conv, 'grouped NCHW': _raw_grouped(x4, weight, grad, torch.contiguous_format),
            'grouped NHWC': _raw_grouped(x4, weight, grad, NHWC), 'PowConv L=4': powconv,
            'NCHW step, copies': nchw_step, 'NHWC step, copies': nhwc_step}, reset


def measure(shape, batch: int, repeats: int, warmup: int):
    name, cin, cout, height, width = shape
    steps, reset = cases(cin, cout, height, width, batch)
    times = {key: [] for key in steps}
    for round_ in range(warmup + repeats):
        for key, step in steps.items():
            reset()
            start = time.perf_counter()
            step()
            if round_ >= warmup:
                times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) for key, values in times.items()}
    return name, {key: (value, value / medians['nn.Conv2d']) for key, value in medians.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--repeats', type=int, default=21, help='timed rounds (median)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed rounds first')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--malloc', default=None, choices=SETTINGS, help='glibc malloc settings (default: tuned)')
    parser.add_argument('--shapes', nargs='+', default=None, metavar='NAME',
                        help=f'a subset of {[s[0] for s in SHAPES]} (default: all)')
    args = parser.parse_args(argv)
    known = [s[0] for s in SHAPES]
    unknown = [s for s in args.shapes or () if s not in known]
    if unknown:
        parser.error(f'unknown shape(s) {unknown}; accepted: {known}')
    for option in ('threads', 'repeats', 'batch'):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f'--{option} must be >= 1, got {value}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = tune_malloc(args.malloc)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, malloc: {malloc}; fwd + bwd, batch '
          f'{args.batch}, float32, median of {args.repeats}; ms and ratio to nn.Conv2d (NCHW)')
    started = time.perf_counter()
    header = None
    for shape in SHAPES:
        if args.shapes and shape[0] not in args.shapes:
            continue
        name, row = measure(shape, args.batch, args.repeats, args.warmup)
        if header is None:
            header = f'{"shape":<16}' + ''.join(f'{key:>22}' for key in row)
            print(header)
        print(f'{name:<16}' + ''.join(f'{seconds * 1e3:>13.2f} {ratio:>7.3f}x' for seconds, ratio in row.values()),
              flush=True)
    print(f'total {time.perf_counter() - started:.0f} s')


if __name__ == '__main__':
    main()
