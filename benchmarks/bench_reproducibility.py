"""What changes trained weights, and do pinned kernels give the same weights on another machine?

Trains ``configs/faster_rcnn_zf_pow1_voc.py`` for ``--iters`` iterations on a generated VOC set (192x160, seed 0)
once per setting, each in its own process under ``reproducible_env`` (1 thread unless the setting says otherwise):

- ``native`` (twice): each library's own kernel choice, the best the CPU has;
- ``pinned-avx2`` / ``pinned-default``: ``reproducible_env(cpu_capability=...)`` (torch, oneDNN and MKL limited to
  that instruction set);
- ``threads-2``: native kernels, 2 threads.

Prints, per setting, the largest difference of a weight tensor relative to that tensor's largest magnitude against
``native`` (the table of docs/usage.md, "What changes the numbers") and the sha256 of its weights (every tensor's
bytes, keys sorted). ``--record FILE`` appends this machine's fingerprint (CPU, flags, versions, hashes) to a JSON
list; each earlier fingerprint in the file from a machine with the same library versions is compared setting by
setting: equal hashes on two CPUs are the cross-machine reproducibility the pinned settings promise, different ones
refute it for that pair. The committed ``benchmarks/reproducibility_fingerprints.json`` holds the machines seen so far.

    python benchmarks/bench_reproducibility.py [--iters 4] [--record benchmarks/reproducibility_fingerprints.json]
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIG = osp.join(REPO, 'configs', 'faster_rcnn_zf_pow1_voc.py')
IMAGE_SIZE = (192, 160)
SETTINGS = {  # name: (threads, cpu_capability)
    'native': (1, None), 'native-again': (1, None), 'pinned-avx2': (1, 'avx2'), 'pinned-default': (1, 'default'),
    'threads-2': (2, None)}


def train(work_dir, data_root, iters, threads, cpu_capability):
    from featquant_mmdet.engine.reproducibility import reproducible_env
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    env = reproducible_env(dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', '')),
                           threads=threads, cpu_capability=cpu_capability)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir', work_dir, '--cfg-options',
           f'train_cfg.max_iters={iters}', 'train_cfg.val_begin=100000', f'default_hooks.checkpoint.interval={iters}',
           'randomness.seed=0', 'optim_wrapper.optimizer.lr=0.02', 'optim_wrapper.clip_grad.max_norm=10',
           *voc_data_options(data_root, IMAGE_SIZE), *loader_options()]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f'training failed ({" ".join(cmd)}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}')
    return torch.load(osp.join(work_dir, f'iter_{iters}.pth'), map_location='cpu', weights_only=False)['state_dict']


def digest(state_dict):
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def largest_relative_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max() / a[k].float().abs().max().clamp_min(1e-12))
               for k in a if a[k].is_floating_point())


def versions():
    import mmcv
    import mmdet
    import mmengine
    return dict(python=platform.python_version(), torch=torch.__version__, mmcv=mmcv.__version__,
                mmdet=mmdet.__version__, mmengine=mmengine.__version__)


def compare_with_recorded(records, mine):
    """One line per earlier fingerprint: which settings give the same weights on both machines."""
    lines = []
    for other in records:
        if other['versions'] != mine['versions']:
            lines.append(f'  {other["kernels"]["cpu"]} ({other["recorded_at"]}): other library versions '
                         f'{other["versions"]}, not comparable')
            continue
        same = [s for s in mine['sha256'] if other['sha256'].get(s) == mine['sha256'][s]]
        differ = [s for s in mine['sha256'] if s in other['sha256'] and s not in same]
        cpu = other['kernels']
        lines.append(f'  {cpu["cpu"]} (AVX-512: {cpu["avx512f"]}, torch kernels {cpu["torch_cpu_capability"]}, '
                     f'{other["recorded_at"]}): same weights for {same or "no setting"}; different for '
                     f'{differ or "no setting"}')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='example:\n  python benchmarks/bench_reproducibility.py --iters 4 '
                                            '--record benchmarks/reproducibility_fingerprints.json')
    parser.add_argument('--iters', type=int, default=4, help='training iterations per setting (default 4)')
    parser.add_argument('--record', help='JSON list to compare with and append this machine\'s fingerprint to')
    args = parser.parse_args()
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    records = []
    if args.record and osp.isfile(args.record):
        with open(args.record) as f:
            records = json.load(f)
        if not isinstance(records, list):
            parser.error(f'--record {args.record} holds no JSON list of fingerprints')

    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    from featquant_mmdet.engine.reproducibility import cpu_kernels
    from featquant_mmdet.fileio import utc_now, write_json_atomic
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_voc_dataset(osp.join(tmp, 'data'), num_train=8, num_test=2, image_size=IMAGE_SIZE,
                                     classes=('car', ), seed=0)
        weights = {}
        for name, (threads, capability) in SETTINGS.items():
            weights[name] = train(osp.join(tmp, name), data_root, args.iters, threads, capability)
            print(f'trained {name}', flush=True)
    mine = dict(recorded_at=utc_now(), iters=args.iters, kernels=cpu_kernels({}), versions=versions(),
                sha256={name: digest(sd) for name, sd in weights.items()})
    cpu = mine['kernels']
    print(f'\n{cpu["cpu"]}, AVX2 {cpu["avx2"]}, AVX-512 {cpu["avx512f"]}, torch kernels '
          f'{cpu["torch_cpu_capability"]}; {args.iters} iterations of {osp.basename(CONFIG)} on {IMAGE_SIZE}')
    print('| setting | largest relative weight difference to native | sha256 |\n|---|---:|---|')
    for name, sd in weights.items():
        diff = largest_relative_difference(weights['native'], sd)
        print(f'| {name} | {"bitwise equal" if diff == 0 else f"{diff:.2g}"} | {mine["sha256"][name][:16]} |')
    if records:
        print('\nAgainst the recorded machines (same library versions needed):', *compare_with_recorded(records, mine),
              sep='\n')
    if args.record:
        write_json_atomic(args.record, records + [mine])  # a killed run leaves the earlier machines' records intact
        print(f'\nfingerprint appended to {args.record}')


if __name__ == '__main__':
    main()
