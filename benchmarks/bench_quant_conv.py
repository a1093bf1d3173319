"""Forward+backward time and peak memory of the quantizing convs against a plain ``nn.Conv2d`` of the same shape.

Run: ``.venv/bin/python benchmarks/bench_quant_conv.py [--device cpu|cuda] [--repeats 15] [--threads N]``

Everything runs in one process, side by side: each round times every layer once, in turn, so that load changes on a
shared machine hit all of them alike; the table reports the median over rounds and the ratio to the plain conv.
One step = ``out = layer(x); out.backward(g)`` with ``x`` a ReLU-like feature map (half zeros) that requires grad,
and ``g`` a fixed upstream gradient.

Peak memory, CPU: PyTorch's profiler with ``profile_memory=True`` records every allocation and free of the CPU
allocator (tensors made by aten ops, autograd and oneDNN's reorders alike; not Python objects). We replay those
events in time order over one step and add the bytes that exist before it (input, parameters, upstream gradient),
so the number is what ``torch.cuda.max_memory_allocated`` reports on a GPU: the largest amount of tensor memory
live at once during the step. On CUDA we use exactly that (after ``reset_peak_memory_stats``).

Shapes: the ZF detector's conv3-conv5 on a ~600x1000 image (batch 2, 38x63 maps) and a ResNet-50 3x3 conv
(layer3's 256->256 at 14x14, batch 8). Targets from the issue: PowConv (Lambda=1) and SFConv <= 1.10x time and
<= 1.25x peak memory; PowConv Lambda=4 <= 1.5x time. The naive autograd power ``sign(x) * |x| ** (alpha + 1)``
followed by the conv is included as the reference the issue quotes. ``ME`` rows use ``memory_efficient=True`` (the
mapped input is recomputed in backward instead of kept): same peak for a single layer (the mapped input exists
during the conv's backward either way); the saving shows in a stack of layers, measured by section 3 of
``benchmarks/bench_quant_conv_gpu.py`` (which also runs on the CPU: ``--device cpu``).
"""
import argparse
import os
import os.path as osp
import sys

# the profiler used for CPU peak memory (kineto) otherwise prints two trace lines per profiled step, and on machines
# without a GPU an error about the device count; 6 is above its highest log level
os.environ.setdefault('KINETO_LOG_LEVEL', '6')

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from featquant_mmdet.layers.quant_conv import HPowConv, PowConv, SFConv, SFPowConv  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_quant_conv_gpu import peak_bytes, time_steps  # noqa: E402  (one timing/memory method for both)

SHAPES = [  # name, in, out, batch, height, width
    ('ZF conv3', 256, 384, 2, 38, 63),
    ('ZF conv4', 384, 384, 2, 38, 63),
    ('ZF conv5', 384, 256, 2, 38, 63),
    ('R50 layer3 3x3', 256, 256, 8, 14, 14),
]


class NaivePowConv(nn.Conv2d):
    """The reference: the power written with autograd ops (keeps its intermediates for backward)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = nn.Parameter(torch.zeros(1, self.in_channels, 1, 1))

    def forward(self, x):
        return self._conv_forward(torch.sign(x) * x.abs() ** (self.alpha + 1), self.weight, self.bias)


def make_layers(cin, cout, device):
    layers = {
        'nn.Conv2d': nn.Conv2d(cin, cout, 3, padding=1),
        'SFConv': SFConv(cin, cout, 3, padding=1, beta=100.0),
        'PowConv L=1': PowConv(cin, cout, 3, padding=1),
        'PowConv L=1 ME': PowConv(cin, cout, 3, padding=1, memory_efficient=True),
        'PowConv L=4': PowConv(cin, cout, 3, padding=1, num_portions=4),
        'SFPowConv L=1': SFPowConv(cin, cout, 3, padding=1),
        'HPowConv L=1': HPowConv(cin, cout, 3, padding=1),
        'naive pow (ref)': NaivePowConv(cin, cout, 3, padding=1),
    }
    gen = torch.Generator().manual_seed(0)
    for layer in layers.values():
        with torch.no_grad():
            if hasattr(layer, 'alpha'):  # exponents away from 0 so the power does real work
                layer.alpha.copy_(torch.rand(layer.alpha.shape, generator=gen) - 0.5)
        layer.to(device)
    return layers


def make_step(layer, x, g):
    def step():
        out = layer(x)
        out.backward(g)
        x.grad = None
        for p in layer.parameters():
            p.grad = None
    return step


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=15, help='timed rounds (median reported)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU)')
    parser.add_argument('--shapes', nargs='*', default=None, help='subset of shape names (default: all)')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, '
          f'cpu count {os.cpu_count()}, repeats {args.repeats} (median)')
    header = f'{"shape":<16} {"layer":<16} {"time ms":>9} {"x plain":>8} {"peak MB":>9} {"x plain":>8}'
    print(header)
    print('-' * len(header))
    rows = []
    for name, cin, cout, n, h, w in SHAPES:
        if args.shapes and name not in args.shapes:
            continue
        torch.manual_seed(0)
        x = F.relu(torch.randn(n, cin, h, w, device=args.device)).requires_grad_()
        g = torch.randn(n, cout, h, w, device=args.device)
        layers = make_layers(cin, cout, args.device)
        steps = {k: make_step(layer, x, g) for k, layer in layers.items()}
        device = torch.device(args.device)
        times = time_steps(steps, device, args.repeats, args.warmup)
        peaks = {k: peak_bytes(step, device, tensor_bytes([x, g, *layers[k].parameters(), *layers[k].buffers()]))
                 for k, step in steps.items()}
        for k in layers:
            t_ratio = times[k] / times['nn.Conv2d']
            m_ratio = peaks[k] / peaks['nn.Conv2d']
            rows.append((name, k, t_ratio, m_ratio))
            print(f'{name:<16} {k:<16} {times[k] * 1e3:9.2f} {t_ratio:8.3f} {peaks[k] / 2**20:9.2f} {m_ratio:8.3f}')
        print()
    targets = {'SFConv': (1.10, 1.25), 'PowConv L=1': (1.10, 1.25), 'PowConv L=4': (1.5, None)}
    print('targets (issue): time/memory ratio limits', targets)
    for name, k, t_ratio, m_ratio in rows:
        if k in targets:
            t_lim, m_lim = targets[k]
            ok_t = t_ratio <= t_lim
            ok_m = m_lim is None or m_ratio <= m_lim
            print(f'  {name:<16} {k:<12} time {t_ratio:.3f} {"ok" if ok_t else "OVER"}'
                  + ('' if m_lim is None else f', memory {m_ratio:.3f} {"ok" if ok_m else "OVER"}'))


if __name__ == '__main__':
    main()
