"""Issue 16's speed targets in one run: quantizing convs and a ZF backbone against plain convs, side by side.

Made for a GPU machine that has torch and nothing else (no mmcv/mmdet/mmengine), run from a checkout; it also runs
on the CPU::

    python benchmarks/bench_quant_conv_gpu.py                                # CUDA, about 2-4 minutes
    python benchmarks/bench_quant_conv_gpu.py --device cpu --threads 2       # CPU: batch 2, float32

Three tables, every ratio against the plain ``nn.Conv2d`` (or plain ZF) measured in the same process, each round
timing every variant once in turn (load drifts hit all alike), medians over rounds:

1. layers, forward + backward: ZF conv3-conv5 (38x63 maps of a ~600x1000 image) and ResNet-50's four 3x3 conv
   shapes, at batch 2 and 16, in float32 and under bfloat16 autocast (CUDA defaults; CPU: batch 2, float32).
   Rows marked ``eager``/``fused`` force that path; the others use the device's default (compiled on CUDA, the C++
   kernel on the CPU, see featquant_mmdet/ops/fused.py).
2. ZF backbone forward + backward: plain ZF vs ZF-POW-1 (PowConv, Lambda = 1, on conv3-conv5). The backbone is
   built here from torch modules with exactly the layer shapes of ``featquant_mmdet/models/backbones/zf.py`` (conv1
   7x7/2, conv2 5x5/2 with Caffe's within-channel LRN and ceil-mode pools, conv3-5 3x3), because that class needs
   mmdet's registries; ``tests/test_layers_without_mm.py`` checks that the two have the same layers.
3. memory-efficient mode: peak memory of a stack of PowConv + ReLU blocks, forward + backward, with and without
   ``memory_efficient=True`` (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the profiler's allocation events),
   and the bytes autograd keeps between forward and backward (``saved_tensors_hooks``, exact on both devices).

Targets (issue 16): CUDA, batch 16: PowConv and SFConv Lambda=1 <= 1.3x, PowConv Lambda=4 <= 1.6x, ZF-POW-1
backbone <= 1.10x. CPU (2 threads): PowConv Lambda=1 <= 1.10x at every shape, Lambda=4 <= 1.5x. The detector
targets on CPU are measured by ``benchmarks/bench_zf_detector.py``.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

os.environ.setdefault('KINETO_LOG_LEVEL', '6')  # the CPU profiler's trace lines

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from featquant_mmdet.layers import HPowConv, PowConv, SFConv, SFPowConv, WithinChannelLRN  # noqa: E402
from featquant_mmdet.malloc import ENV_VAR as MALLOC_ENV, SETTINGS, tune_malloc  # noqa: E402
from featquant_mmdet.ops.fused import ENV_VAR, describe_default, resolve_fused  # noqa: E402

SHAPES = [  # name, in, out, height, width
    ('ZF conv3', 256, 384, 38, 63),
    ('ZF conv4', 384, 384, 38, 63),
    ('ZF conv5', 384, 256, 38, 63),
    ('R50 layer1 3x3', 64, 64, 56, 56),
    ('R50 layer2 3x3', 128, 128, 28, 28),
    ('R50 layer3 3x3', 256, 256, 14, 14),
    ('R50 layer4 3x3', 512, 512, 7, 7),
]
# (out_channels, kernel, stride, padding) of conv1..conv5: featquant_mmdet/models/backbones/zf.py ZF_CONVS
ZF_CONVS = ((96, 7, 2, 3), (256, 5, 2, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
POW_LAYERS = ('conv3', 'conv4', 'conv5')


def layer_factories(device_type):
    fused_default = resolve_fused(None, torch.device(device_type))
    rows = {
        'nn.Conv2d': lambda i, o: nn.Conv2d(i, o, 3, padding=1),
        'SFConv': lambda i, o: SFConv(i, o, 3, padding=1, beta=100.0),
        'PowConv L=1': lambda i, o: PowConv(i, o, 3, padding=1),
        'PowConv L=4': lambda i, o: PowConv(i, o, 3, padding=1, num_portions=4),
        'SFPowConv L=1': lambda i, o: SFPowConv(i, o, 3, padding=1),
        'HPowConv L=1': lambda i, o: HPowConv(i, o, 3, padding=1),
    }
    other = 'eager' if fused_default else 'fused'  # the other path, for comparison
    rows[f'PowConv L=1 {other}'] = lambda i, o: PowConv(i, o, 3, padding=1, fused=not fused_default)
    rows[f'PowConv L=4 {other}'] = lambda i, o: PowConv(i, o, 3, padding=1, num_portions=4, fused=not fused_default)
    return rows


def randomize_exponents(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('alpha'):  # away from 0 so that the power does real work
                p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
    return module


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def make_step(module, x, g, autocast_dtype):
    def step():
        with torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            out = module(x)
        out = out[-1] if isinstance(out, tuple) else out
        out.backward(g)
        x.grad = None
        for p in module.parameters():
            p.grad = None
    return step


CLOCK = time.perf_counter  # --clock cpu: time.process_time (the process's CPU time; CPU device only)


def time_steps(steps, device, repeats, warmup):
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            t0 = CLOCK()
            step()
            sync(device)
            times[name].append(CLOCK() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ------------------------------------------------------------------------------------------------------- layers
def bench_layers(args, device):
    print(f'\n1. layers, forward + backward (median of {args.repeats}), ratio to nn.Conv2d of the same shape')
    header = f'{"shape":<16} {"batch":>5} {"dtype":<6} {"layer":<18} {"ms":>9} {"x plain":>8}'
    print(header + '\n' + '-' * len(header))
    results = []
    factories = layer_factories(device.type)
    for name, cin, cout, h, w in SHAPES:
        for batch in args.batches:
            for dtype in args.dtypes:
                torch.manual_seed(0)
                x = F.relu(torch.randn(batch, cin, h, w, device=device)).requires_grad_()
                g = torch.randn(batch, cout, h, w, device=device)
                autocast = torch.bfloat16 if dtype == 'bf16' else None
                layers = {k: randomize_exponents(f(cin, cout)).to(device) for k, f in factories.items()}
                times = time_steps({k: make_step(m, x, g, autocast) for k, m in layers.items()}, device,
                                   args.repeats, args.warmup)
                for k in layers:
                    ratio = times[k] / times['nn.Conv2d']
                    results.append((name, batch, dtype, k, ratio))
                    print(f'{name:<16} {batch:>5} {dtype:<6} {k:<18} {times[k] * 1e3:9.3f} {ratio:8.3f}')
                del layers, x, g
    return results


# ---------------------------------------------------------------------------------------------- ZF backbone
class TorchZF(nn.Module):
    """ZF of zf.py in plain torch: conv1..conv5 (+ReLU), LRN and ceil-mode max pool after conv1 and conv2."""

    def __init__(self, pow_layers=(), fused=None):
        super().__init__()
        channels = 3
        for i, (out_channels, kernel, stride, padding) in enumerate(ZF_CONVS):
            name = f'conv{i + 1}'
            if name in pow_layers:
                conv = PowConv(channels, out_channels, kernel, stride=stride, padding=padding, fused=fused)
            else:
                conv = nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=padding)
            self.add_module(name, conv)
            channels = out_channels
        for i in (1, 2):
            self.add_module(f'norm{i}', WithinChannelLRN(local_size=3, alpha=5e-5, beta=0.75))
            self.add_module(f'pool{i}', nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        for i in range(1, 6):
            x = self.relu(getattr(self, f'conv{i}')(x))
            if i <= 2:
                x = getattr(self, f'pool{i}')(getattr(self, f'norm{i}')(x))
        return x


def bench_zf(args, device):
    batch, (h, w) = args.zf_batch, args.zf_size
    print(f'\n2. ZF backbone forward + backward, batch {batch}, {h}x{w} (median of {args.repeats}), '
          'ratio to plain ZF')
    variants = {'ZF': dict(), 'ZF-POW-1': dict(pow_layers=POW_LAYERS)}
    fused_default = resolve_fused(None, device)
    variants[f'ZF-POW-1 {"eager" if fused_default else "fused"}'] = dict(pow_layers=POW_LAYERS, fused=not fused_default)
    torch.manual_seed(0)
    models = {}
    for k, kw in variants.items():
        torch.manual_seed(0)
        models[k] = randomize_exponents(TorchZF(**kw)).to(device)
    x = torch.randn(batch, 3, h, w, device=device).requires_grad_()
    with torch.no_grad():
        out_shape = models['ZF'](x).shape
    g = torch.randn(out_shape, device=device)
    results = []
    for dtype in args.dtypes:
        autocast = torch.bfloat16 if dtype == 'bf16' else None
        times = time_steps({k: make_step(m, x, g, autocast) for k, m in models.items()}, device, args.repeats,
                           args.warmup)
        for k in models:
            ratio = times[k] / times['ZF']
            results.append((dtype, k, ratio))
            print(f'{dtype:<6} {k:<16} {times[k] * 1e3:9.2f} ms {ratio:8.3f}')
    return results


# ------------------------------------------------------------------------------------------- memory-efficient
class SavedBytes:
    """Bytes of the distinct tensors autograd keeps for backward, counted by ``saved_tensors_hooks``."""

    def __init__(self, exclude=()):
        self.storages = {}
        self.exclude = {t.untyped_storage().data_ptr() for t in exclude}  # e.g. the weights: not activations

    def pack(self, t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.exclude:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return t

    def __call__(self, fn):
        with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            return fn()


def peak_bytes(step, device, baseline_bytes):
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return baseline_bytes + peak


def bench_memory(args, device):
    depth, channels, (h, w), batch = 6, 256, (38, 63), 2
    print(f'\n3. memory-efficient mode: {depth} x (PowConv {channels}->{channels} 3x3 + ReLU), batch {batch}, '
          f'{h}x{w}, forward + backward')
    results, steps = {}, {}
    x = F.relu(torch.randn(batch, channels, h, w, device=device)).requires_grad_()
    g = torch.randn(batch, channels, h, w, device=device)
    variants = (('plain nn.Conv2d', None), ('PowConv L=1', dict()), ('PowConv L=1 ME', dict(memory_efficient=True)),
                ('PowConv L=4', dict(num_portions=4)), ('PowConv L=4 ME', dict(num_portions=4, memory_efficient=True)))
    for label, kw in variants:
        torch.manual_seed(0)
        blocks = []
        for _ in range(depth):
            conv = (nn.Conv2d(channels, channels, 3, padding=1) if kw is None
                    else PowConv(channels, channels, 3, padding=1, **kw))
            blocks += [conv, nn.ReLU()]
        model = randomize_exponents(nn.Sequential(*blocks)).to(device)
        steps[label] = make_step(model, x, g, None)
        steps[label]()  # warm-up (allocator caches, compiled kernels)
        counter = SavedBytes(exclude=model.parameters())
        out = counter(lambda: model(x))
        del out
        baseline = sum(t.numel() * t.element_size() for t in [x, g, *model.parameters()])
        results[label] = (sum(counter.storages.values()), peak_bytes(steps[label], device, baseline))
    times = time_steps(steps, device, max(3, args.repeats // 2), 0)
    results = {label: (*results[label], times[label]) for label in results}
    base_saved, base_peak, base_time = results['plain nn.Conv2d']
    print('saved: activations autograd keeps for backward; peak: tensor memory during the step')
    print(f'{"stack":<18} {"saved MB":>9} {"x plain":>8} {"peak MB":>9} {"x plain":>8} {"ms":>9} {"x plain":>8}')
    for label, (saved, peak, t) in results.items():
        print(f'{label:<18} {saved / 2**20:9.1f} {saved / base_saved:8.3f} {peak / 2**20:9.1f} '
              f'{peak / base_peak:8.3f} {t * 1e3:9.2f} {t / base_time:8.3f}')
    return results


# ------------------------------------------------------------------------------------------------------ targets
def print_targets(device, layer_results, zf_results):
    print('\ntargets (issue 16), ratios from this run:')
    checks = []
    if device.type == 'cuda':
        for dtype in sorted({r[2] for r in layer_results}):
            for layer, limit in (('PowConv L=1', 1.3), ('SFConv', 1.3), ('PowConv L=4', 1.6),
                                 ('PowConv L=1 eager', 1.3), ('PowConv L=4 eager', 1.6)):
                ratios = [r[4] for r in layer_results if r[1] == 16 and r[2] == dtype and r[3] == layer]
                if ratios:
                    checks.append((f'{layer} batch 16 {dtype}, worst shape', max(ratios), limit))
        for dtype, k, ratio in zf_results:
            if k == 'ZF-POW-1':
                checks.append((f'ZF-POW-1 backbone {dtype}', ratio, 1.10))
    else:
        for layer, limit in (('PowConv L=1', 1.10), ('PowConv L=4', 1.5)):
            for path in ('', ' fused', ' eager'):
                ratios = [r[4] for r in layer_results if r[3] == layer + path]
                if ratios:
                    checks.append((f'{layer + path}, worst shape/batch/dtype', max(ratios), limit))
        for dtype, k, ratio in zf_results:
            if k.startswith('ZF-POW-1'):
                checks.append((f'{k} backbone {dtype} (no CPU target; detector: bench_zf_detector.py)', ratio, None))
    for label, ratio, limit in checks:
        verdict = '' if limit is None else f'<= {limit:.2f}  {"met" if ratio <= limit else "MISSED"}'
        print(f'  {label:<60} {ratio:6.3f}  {verdict}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU)')
    parser.add_argument('--repeats', type=int, default=None, help='timed rounds (default: 20 on CUDA, 7 on CPU)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per variant (default 3 / 1)')
    parser.add_argument('--batches', type=int, nargs='+', default=None, help='layer-table batch sizes '
                        '(default: 2 16 on CUDA, 2 on CPU)')
    parser.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16'], default=None,
                        help='float32 and/or bfloat16 autocast (default: both on CUDA, fp32 on CPU)')
    parser.add_argument('--zf-batch', type=int, default=None, help='ZF batch (default: 16 on CUDA, 1 on CPU)')
    parser.add_argument('--zf-size', type=int, nargs=2, default=(600, 1000), metavar=('H', 'W'))
    parser.add_argument('--skip', nargs='+', default=(), choices=['layers', 'zf', 'memory'])
    parser.add_argument('--malloc', default=None, choices=SETTINGS,
                        help=f'glibc malloc settings (featquant_mmdet/malloc.py; default: {MALLOC_ENV} or tuned, '
                             'as the tools run)')
    parser.add_argument('--clock', default='wall', choices=['wall', 'cpu'],
                        help='wall: elapsed time; cpu: the process\'s CPU time (CPU device; with --threads 1 it '
                             'measures the work itself, little affected by other processes on a shared machine)')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible (use --device cpu)')
    if args.device == 'cuda' and args.clock == 'cpu':
        parser.error('--clock cpu: for --device cpu only (GPU work is not CPU time)')
    cuda = args.device == 'cuda'
    for name, value in (('threads', args.threads), ('repeats', args.repeats), ('zf_batch', args.zf_batch)):
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    args.repeats = args.repeats or (20 if cuda else 7)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.batches = args.batches or ([2, 16] if cuda else [2])
    args.dtypes = args.dtypes or (['fp32', 'bf16'] if cuda else ['fp32'])
    args.zf_batch = args.zf_batch or (16 if cuda else 1)
    return args


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    global CLOCK
    CLOCK = time.process_time if args.clock == 'cpu' else time.perf_counter
    malloc = tune_malloc(args.malloc)
    start = time.perf_counter()
    name = (torch.cuda.get_device_name() if device.type == 'cuda'
            else f'CPU, {torch.get_num_threads()} threads, {args.clock} clock')
    print(f'torch {torch.__version__}, {name}; maps by default: {describe_default(device)} '
          f'({ENV_VAR}={os.environ.get(ENV_VAR, "auto")}); malloc: {malloc}')
    layer_results = [] if 'layers' in args.skip else bench_layers(args, device)
    zf_results = [] if 'zf' in args.skip else bench_zf(args, device)
    if 'memory' not in args.skip:
        bench_memory(args, device)
    print_targets(device, layer_results, zf_results)
    print(f'\ntotal {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
