"""Images/s of one data-loader worker for the ImageNet pretraining pipeline, ours against torchvision's.

    python benchmarks/bench_imagenet_pipeline.py [--num-images 120] [--repeats 7] [--size 500 375]

Ours: ``ImageNetDataset`` with the train pipeline of ``configs/pretrain/resnet18_imagenet.py`` as it is (decode with
mmcv's ``LoadImageFromFile``, ``RandomResizedCrop`` 224, horizontal flip, ``PCALighting``, ``PackClsInputs``: a
uint8 tensor), once per decode backend (``imdecode_backend``: cv2, pillow, and turbojpeg where PyTurboJPEG is
installed); "+ normalise" adds the config's ``ClsDataPreprocessor`` (float, RGB, (x - mean) / std) on the CPU in
batches of 32, which a GPU run does on the GPU instead. torchvision: ``datasets.ImageFolder`` (PIL decode) with
``RandomResizedCrop(224)``, ``RandomHorizontalFlip``, ``ToTensor``, AlexNet's PCA lighting on the tensor (the
fb.resnet.torch port, the same eigenvalues and alphastd 0.1) and ``Normalize``: its output is normalised already.

One thread (OpenCV, OpenMP, torch), as in a loader worker; the same generated JPEGs for all (full-size:
``--size`` 500x375, ILSVRC-12's typical size, quality 92), read once before timing so that the page cache holds them;
every variant passes over all images once per round, round-robin in a rotating order, with the same seeds each
round; the median (and the best) round is reported. Target (issue 28): ours not slower than torchvision.
"""
import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'pretrain', 'resnet18_imagenet.py')
BATCH = 32


def make_images(root, num_images, size):
    """``num_images`` JPEGs of ``size`` (width, height) in 6 class folders under ``root``/train (the generator's)."""
    from featquant_mmdet.datasets.synthetic_imagenet import DEFAULT_CLASSES, make_imagenet_dataset
    per_class = -(-num_images // len(DEFAULT_CLASSES))
    make_imagenet_dataset(root, num_train_per_class=per_class, num_val_per_class=1, image_size=tuple(size), seed=0)


def ours(root, backend, normalise):
    """A zero-argument pass over the dataset with our config's pipeline; returns images done."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS, MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIG)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = root
    dataset_cfg.pipeline[0]['imdecode_backend'] = backend
    dataset = DATASETS.build(dataset_cfg)
    preprocessor = MODELS.build(cfg.model.data_preprocessor) if normalise else None

    def run():
        batch = []
        for i in range(len(dataset)):
            batch.append(dataset[i])
            if preprocessor is not None and (len(batch) == BATCH or i == len(dataset) - 1):
                preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                  data_samples=[b['data_samples'] for b in batch]), training=True)
                batch = []
            elif preprocessor is None:
                batch = []
        return len(dataset)

    return run


class Lighting:
    """AlexNet's PCA lighting on a [0, 1] RGB tensor (the torchvision port of fb.resnet.torch's)."""

    def __init__(self, alphastd, eigval, eigvec):
        import torch
        self.alphastd = alphastd
        self.eigval = torch.tensor(eigval) / 255.0
        self.eigvec = torch.tensor(eigvec)

    def __call__(self, img):
        import torch
        alpha = torch.empty(3).normal_(0, self.alphastd)
        rgb = (self.eigvec * alpha * self.eigval).sum(1)
        return img + rgb.view(3, 1, 1)


def torchvision_reference(root):
    from torchvision import datasets, transforms as T

    from featquant_mmdet.datasets.transforms.cls_transforms import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
    transform = T.Compose([
        T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
        Lighting(0.1, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC),
        T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(osp.join(root, 'train'), transform=transform)

    def run():
        for i in range(len(dataset)):
            dataset[i]
        return len(dataset)

    return run


def measure(calls, repeats):
    """``{name: [images/s per round]}``: rounds round-robin in a rotating order, every RNG reseeded per pass."""
    import numpy as np
    import torch
    rates = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats + 1):  # round 0 warms up (lazy imports, caches) and is dropped
        for name in names[r % len(names):] + names[:r % len(names)]:
            np.random.seed(r)
            random.seed(r)
            torch.manual_seed(r)
            start = time.perf_counter()
            n = calls[name]()
            if r:
                rates[name].append(n / (time.perf_counter() - start))
    return rates


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=120, help='generated JPEGs (6 classes)')
    parser.add_argument('--size', type=int, nargs=2, default=[500, 375], metavar=('WIDTH', 'HEIGHT'))
    parser.add_argument('--repeats', type=int, default=7, help='timed rounds (one pass over all images each)')
    parser.add_argument('--data', help='a folder for the images (default: a temporary one); reused if it has them')
    args = parser.parse_args(argv)
    if args.num_images < 6:
        parser.error(f'--num-images must be >= 6 (one per class), got {args.num_images}')
    if min(args.size) < 64:
        parser.error(f'--size: each side at least 64, got {args.size}')
    if args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    return args


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import numpy as np
    import torch
    cv2.setNumThreads(0)  # as mmengine sets it for loader workers
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or tmp
        if not osp.isdir(osp.join(root, 'train')):
            make_images(root, args.num_images, args.size)
        files = [osp.join(d, f) for d, _, fs in os.walk(osp.join(root, 'train')) for f in fs]
        for path in files:  # into the page cache
            with open(path, 'rb') as f:
                f.read()
        backends = ['cv2', 'pillow']
        try:
            import turbojpeg  # noqa: F401
            backends.append('turbojpeg')
        except ImportError:
            print('turbojpeg: PyTurboJPEG is not installed, its backend is not measured')
        calls = {}
        for backend in backends:
            calls[f'ours {backend}'] = ours(root, backend, normalise=False)
            calls[f'ours {backend} + normalise'] = ours(root, backend, normalise=True)
        calls['torchvision ImageFolder (PIL)'] = torchvision_reference(root)
        rates = measure(calls, args.repeats)

    load = os.getloadavg()[0]
    print(f'{len(files)} JPEGs of {args.size[0]}x{args.size[1]}, {args.repeats} rounds, 1 thread, '
          f'torch {torch.__version__}, cv2 {cv2.__version__}, load average {load:.2f}')
    ref = rates['torchvision ImageFolder (PIL)']
    print('| pipeline (one loader worker) | images/s, median (best) | vs torchvision, median of rounds (range) |')
    print('| --- | --- | --- |')
    for name, r in rates.items():
        ratios = [a / b for a, b in zip(r, ref)]  # paired per round: the load of that round hits both
        print(f'| {name} | {np.median(r):.1f} ({max(r):.1f}) | {np.median(ratios):.2f}x '
              f'({min(ratios):.2f}-{max(ratios):.2f}) |')


if __name__ == '__main__':
    main()
