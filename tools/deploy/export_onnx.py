"""Export a classifier, or a detector's backbone, with quantizing convs to ONNX and check it in ONNX Runtime.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx [--shape H W] [--part auto]

``--part auto`` exports the whole model for a classifier config (logits) and the backbone for a detector config
(its feature maps; the detection heads with their RoI ops are not exported). The graph's input is the image tensor
*after* the data preprocessor (``(1, 3, H, W)`` float, normalised, RGB as the config's preprocessor makes it), as in
mmdeploy. The quantizing maps export in their inference form as plain ONNX ops (``Abs``, ``Max``, ``Log``, ``Mul``,
``Exp``; ``Floor``/``Div`` for SF; the HPOW statistics as reductions); no ``PythonOp`` is left in the graph, which
the tool checks. Then it runs the file in ONNX Runtime on a random input and compares with PyTorch: the largest
difference, relative to the largest output magnitude (at least 1), must stay within ``--tolerance`` (1e-4),
otherwise the exit code is 1.

Errors in the arguments (missing files, a bad shape, an unknown part) end with one line and exit code 2.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

PARTS = ('auto', 'model', 'backbone')
MIN_SIDE = 32


EXAMPLES = """examples:
  python tools/deploy/export_onnx.py configs/pretrain/zf_pow1_imagenet.py CHECKPOINT --out zf_pow1.onnx
  python tools/deploy/export_onnx.py configs/faster_rcnn_zf_pow1_voc.py CHECKPOINT --out backbone.onnx \
      --shape 600 1000 --part backbone
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('config', help='model config (classifier or detector)')
    parser.add_argument('checkpoint', help='checkpoint file with the weights (a state_dict or mmengine checkpoint)')
    parser.add_argument('--out', required=True, help='the ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help=f'input height and width (each >= {MIN_SIDE}; default 224 224)')
    parser.add_argument('--part', default='auto', choices=PARTS,
                        help='auto: the whole classifier, or the backbone of a detector')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset version (default 17)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted |onnx - torch| / max(1, max|torch|) (default 1e-4)')
    parser.add_argument('--no-check', action='store_true', help='skip the ONNX Runtime comparison')
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint'):
        path = getattr(args, name)
        if not osp.isfile(path):
            usage_error(f'{name} file not found: {path}')
    if any(side < MIN_SIDE for side in args.shape):
        usage_error(f'--shape must be two integers >= {MIN_SIDE} (height width), got {args.shape[0]} {args.shape[1]}')
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        usage_error(f'--out: folder {out_dir} does not exist')
    if not args.tolerance > 0:
        usage_error(f'--tolerance must be > 0, got {args.tolerance}')
    return args


def usage_error(message):
    print(f'export_onnx.py: error: {message}', file=sys.stderr)
    raise SystemExit(2)


def build_model(config_path, checkpoint_path):
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import featquant_mmdet  # noqa: F401  (registers the layers, backbones and classifiers)
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config_path)
    if 'model' not in cfg:
        usage_error(f'config {config_path} has no model')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint_path, map_location='cpu', strict=True, logger='silent')
    return model.eval().to(torch.float32)


def export_module(model, part):
    import torch.nn as nn
    from featquant_mmdet.models.classifiers.image_classifier import ImageClassifier

    if part == 'auto':
        part = 'model' if isinstance(model, ImageClassifier) else 'backbone'
    if part == 'backbone':
        if not hasattr(model, 'backbone'):
            usage_error(f'--part backbone: {type(model).__name__} has no backbone')
        return model.backbone, 'backbone'

    class Logits(nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(x, mode='tensor')

    if not isinstance(model, ImageClassifier):
        usage_error(f'--part model exports classifiers; {type(model).__name__} is not one (use --part backbone)')
    return Logits(model), 'model'


def export(module, out, shape, opset):
    """Write ``module`` (inference form) to ``out``; returns the example input and the PyTorch outputs."""
    import torch
    torch.manual_seed(0)
    x = torch.randn(1, 3, *shape)
    with torch.no_grad():
        reference = module(x)
    reference = list(reference) if isinstance(reference, (tuple, list)) else [reference]
    names = ['output'] if len(reference) == 1 else [f'output{i}' for i in range(len(reference))]
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice; the tracer's note that the layers' structure (Lambda, shapes)
        # is fixed in the graph, which it is: the exported model has one input size
        warnings.simplefilter('ignore', (DeprecationWarning, FutureWarning, torch.jit.TracerWarning))
        torch.onnx.export(module, (x, ), out, dynamo=False, opset_version=opset, input_names=['input'],
                          output_names=names, do_constant_folding=True)
    return x, reference


def check(out, x, reference, tolerance):
    """Run ``out`` in ONNX Runtime; returns (worst relative difference, op types of the graph)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    graph = onnx.load(out).graph
    op_types = sorted({node.op_type for node in graph.node})
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {'input': x.numpy()})
    worst = 0.0
    for got, ref in zip(outputs, reference):
        ref = ref.numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        worst = max(worst, float(np.abs(got - ref).max()) / scale)
    return worst, op_types


def main(argv=None):
    args = parse_args(argv)
    model = build_model(args.config, args.checkpoint)
    module, part = export_module(model, args.part)
    x, reference = export(module, args.out, tuple(args.shape), args.opset)
    shapes = ', '.join(str(tuple(r.shape)) for r in reference)
    print(f'exported {part} of {osp.basename(args.config)} ({type(module).__name__}) to {args.out}: input '
          f'(1, 3, {args.shape[0]}, {args.shape[1]}), outputs {shapes}')
    if args.no_check:
        return 0
    worst, op_types = check(args.out, x, reference, args.tolerance)
    python_ops = [op for op in op_types if 'Python' in op]
    print(f'ONNX Runtime vs PyTorch: max |difference| / max(1, max|output|) = {worst:.2e} '
          f'(tolerance {args.tolerance:g}); ops: {", ".join(op_types)}')
    if python_ops or worst > args.tolerance:
        print(f'export_onnx.py: check failed: {"PythonOp in the graph" if python_ops else "outputs differ"}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
