"""ONNX export of models with quantizing convs (tools/deploy/export_onnx.py), checked in ONNX Runtime."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn

from featquant_mmdet.layers import HPowConv, PowConv, SFConv, SFPowConv

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def tool(repo_root):
    spec = importlib.util.spec_from_file_location('export_onnx', osp.join(repo_root, 'tools', 'deploy',
                                                                          'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(repo_root, config, path):
    """Weights of the config's model with exponents away from 0 (so that the power is not the identity)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(osp.join(repo_root, config)).model)
    model.init_weights()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('alpha'):
                p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def _graph_ops(path):
    return {node.op_type for node in onnx.load(path).graph.node}


@pytest.mark.parametrize('config,part,out_shape', [
    ('configs/faster_rcnn_zf_pow1_voc.py', 'backbone', (1, 256, 5, 5)),
    ('configs/pretrain/resnet18_pow1_imagenet.py', 'model', (1, 1000)),
], ids=['zf-pow1-backbone', 'resnet18-powconv-classifier'])
def test_export_matches_pytorch_in_onnx_runtime(tool, repo_root, tmp_path, capsys, config, part, out_shape):
    ckpt = _checkpoint(repo_root, config, str(tmp_path / 'model.pth'))
    out = str(tmp_path / 'model.onnx')
    assert tool.main([osp.join(repo_root, config), ckpt, '--out', out, '--shape', '64', '64']) == 0
    printed = capsys.readouterr().out
    assert f'exported {part}' in printed and str(out_shape) in printed
    ops = _graph_ops(out)
    assert {'Conv', 'Abs', 'Log', 'Exp', 'Mul'} <= ops  # the power map as plain ONNX ops
    assert not any('Python' in op for op in ops)
    # independent of the tool's own check: the file, run by ONNX Runtime, against the checkpoint's model in torch
    model = tool.build_model(osp.join(repo_root, config), ckpt)
    module, _ = tool.export_module(model, 'auto')
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = module(x)
    ref = ref[-1] if isinstance(ref, tuple) else ref
    got = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(None, {'input': x.numpy()})[-1]
    assert got.shape == out_shape
    torch.testing.assert_close(torch.from_numpy(got), ref, rtol=1e-4, atol=1e-4 * max(1.0, float(ref.abs().max())))


def test_every_quantizing_conv_exports_as_plain_ops(tool, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(SFConv(3, 8, 3, padding=1, beta=10.0), nn.ReLU(),
                          PowConv(8, 8, 3, padding=1, num_portions=2), nn.ReLU(),
                          SFPowConv(8, 8, 1, beta=100.0), nn.ReLU(),
                          HPowConv(8, 4, 3, padding=1)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('alpha'):
                p.uniform_(-0.6, 0.8)
            if name.endswith('hyper_fc2.weight'):
                p.normal_(0, 0.3)
    out = str(tmp_path / 'convs.onnx')
    x, reference = tool.export(model, out, (32, 40), 17)
    worst, ops = tool.check(out, x, reference, 1e-4)
    assert worst <= 1e-4
    assert {'Floor', 'Abs', 'Log', 'Exp', 'Sigmoid'} <= set(ops)  # SF, POW and HPOW's hypernetwork
    assert not any('Python' in op for op in ops)


@pytest.mark.parametrize('argv,message', [
    (['missing.py', '{ckpt}', '--out', '{out}'], 'config file not found: missing.py'),
    (['{config}', 'missing.pth', '--out', '{out}'], 'checkpoint file not found: missing.pth'),
    (['{config}', '{ckpt}', '--out', '{out}', '--shape', '0', '64'], '--shape must be two integers >= 32'),
    (['{config}', '{ckpt}', '--out', '{out}', '--shape', '16', '64'], '--shape must be two integers >= 32'),
    (['{config}', '{ckpt}', '--out', '/no/such/dir/m.onnx'], '--out: folder /no/such/dir does not exist'),
])
def test_bad_arguments_one_line_exit_2(tool, repo_root, tmp_path, capsys, argv, message):
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read: the arguments are checked first')
    values = dict(config=osp.join(repo_root, 'configs', 'faster_rcnn_zf_pow1_voc.py'), ckpt=str(ckpt),
                  out=str(tmp_path / 'm.onnx'))
    with pytest.raises(SystemExit) as exit_info:
        tool.main([a.format(**values) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('export_onnx.py: error: ') and message in err
    assert 'Traceback' not in err
