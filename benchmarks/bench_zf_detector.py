"""Speed of Faster R-CNN with ZF-POW-1 against plain ZF, side by side in one process, at 600x1000.

Both detectors are built from the project's configs (configs/faster_rcnn_zf_voc.py and
configs/faster_rcnn_zf_pow1_voc.py) and run on the same images; training iterations and inference passes alternate
between the two so that machine load drifts affect both alike. Prints medians, the ZF-POW-1 / ZF ratios against the
targets (training <= 1.10x, inference <= 1.05x) and the parameter counts. Wall-clock times are what a user sees;
the process's CPU times are printed too because on a shared machine they depend less on other processes (with
``--threads 1`` they measure the work itself).

    python benchmarks/bench_zf_detector.py [--repeats 7] [--threads 2] [--size 600 1000] [--both-paths]
                                           [--malloc {tuned,system}]

``--both-paths`` adds ZF-POW-1 with the other implementation of the maps (the compiled ones where the eager ones are
the default, as on the CPU, and vice versa; see featquant_mmdet/ops/fused.py), measured in the same rounds.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

TARGETS = {'train iteration': 1.10, 'inference / image': 1.05}
CLOCKS = {'wall': time.perf_counter, 'CPU': time.process_time}


def build_detector(config_name):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', config_name))
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, cfg


def make_batch(height, width, seed):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    # demo boxes are random; a few objects per image as in VOC
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, height, width)], num_items=[3], num_classes=20)


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7, help='timed runs of each model and mode (median)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    parser.add_argument('--size', type=int, nargs=2, default=(600, 1000), metavar=('HEIGHT', 'WIDTH'))
    parser.add_argument('--both-paths', action='store_true',
                        help='also time ZF-POW-1 with the non-default (fused/eager) maps')
    parser.add_argument('--malloc', default=None, choices=('tuned', 'system'),
                        help='glibc malloc settings (featquant_mmdet/malloc.py; default: FEATQUANT_MALLOC or tuned, '
                             'as the tools run)')
    args = parser.parse_args(argv)
    from featquant_mmdet.malloc import tune_malloc
    malloc = tune_malloc(args.malloc)

    import featquant_mmdet  # noqa: F401
    from mmdet.utils import register_all_modules
    from mmengine.logging import MMLogger
    MMLogger.get_instance('bench_zf_detector', log_level='WARNING')  # no per-parameter init report
    from mmengine.optim import build_optim_wrapper
    register_all_modules(init_default_scope=True)
    if args.threads:
        torch.set_num_threads(args.threads)

    from featquant_mmdet.layers import QuantConv2d
    from featquant_mmdet.ops.fused import describe_default, resolve_fused
    fused_default = resolve_fused(None, torch.device('cpu'))
    variants = [('ZF', 'faster_rcnn_zf_voc.py', None), ('ZF-POW-1', 'faster_rcnn_zf_pow1_voc.py', None)]
    if args.both_paths:
        other = 'eager' if fused_default else 'fused'
        variants.append((f'ZF-POW-1 {other}', 'faster_rcnn_zf_pow1_voc.py', not fused_default))
    torch.manual_seed(0)
    models = {}
    for label, config, fused in variants:
        torch.manual_seed(0)
        model, cfg = build_detector(config)
        if fused is not None:
            for module in model.modules():
                if isinstance(module, QuantConv2d):
                    module.fused = fused
        models[label] = (model, build_optim_wrapper(model, cfg.optim_wrapper))
    height, width = args.size
    batch = make_batch(height, width, seed=0)

    def train_iteration(model, optim_wrapper):
        model.train()
        model.train_step(batch, optim_wrapper)

    def inference(model, _optim_wrapper):
        model.eval()
        with torch.no_grad():
            model.test_step(batch)

    # wall-clock time, and the CPU time of this process (less sensitive to other processes on a shared machine)
    times = {(clock, mode, label): [] for clock in CLOCKS for mode in TARGETS for label in models}
    for mode, step in (('train iteration', train_iteration), ('inference / image', inference)):
        for i in range(args.warmup + args.repeats):
            # alternate the models in ABBA order, so that load drifts and cache state favour neither
            order = list(models.items()) if i % 2 == 0 else list(models.items())[::-1]
            for label, (model, optim_wrapper) in order:
                start = {clock: read() for clock, read in CLOCKS.items()}
                step(model, optim_wrapper)
                if i >= args.warmup:
                    for clock, read in CLOCKS.items():
                        times[(clock, mode, label)].append(read() - start[clock])

    print(f'Faster R-CNN, {height}x{width} image, batch 1, CPU, {torch.get_num_threads()} threads, '
          f'median of {args.repeats} (after {args.warmup} warm-up), torch {torch.__version__}; maps by default: '
          f'{describe_default(torch.device("cpu"))}; malloc: {malloc}')
    for label in [label for label in models if label != 'ZF']:
        print(f'{"":30s}{"ZF (s)":>10s}{label + " (s)":>20s}{"ratio":>8s}{"target":>9s}   '
              f'spread (min-max of ZF | {label})')
        for clock, mode in ((clock, mode) for clock in CLOCKS for mode in TARGETS):
            target = TARGETS[mode]
            base, pow1 = times[(clock, mode, 'ZF')], times[(clock, mode, label)]
            ratio = statistics.median(pow1) / statistics.median(base)
            verdict = 'met' if ratio <= target else 'MISSED'
            print(f'{mode + ", " + clock:30s}{statistics.median(base):10.3f}{statistics.median(pow1):20.3f}'
                  f'{ratio:8.3f}{"<= " + str(target):>9s}  {verdict:6s}  {min(base):.3f}-{max(base):.3f} | '
                  f'{min(pow1):.3f}-{max(pow1):.3f}')
    print('parameters:')
    for label, (model, _) in models.items():
        print(f'  {label:9s} detector {count_params(model):>11,d}   backbone {count_params(model.backbone):>10,d}')
    extra = count_params(models['ZF-POW-1'][0]) - count_params(models['ZF'][0])
    print(f'  ZF-POW-1 adds {extra:,d} parameters (exponents of conv3-conv5)')


if __name__ == '__main__':
    main()
