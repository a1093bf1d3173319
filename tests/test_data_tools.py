"""tools/data/make_synthetic_voc.py and make_synthetic_imagenet.py: they write the datasets, and bad arguments end
with a usage error (exit 2) naming what is wrong and what is accepted, before anything is written."""
import xml.etree.ElementTree as ET

import pytest


def run_tool(tool, argv, capsys):
    """Exit status and stderr of ``tool.main(argv)`` (argparse's usage errors raise SystemExit(2))."""
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    return exc.value.code, capsys.readouterr().err


def test_tools_write_the_datasets(tmp_path, load_tool, capsys):
    load_tool('data/make_synthetic_voc').main([str(tmp_path / 'voc'), '--num-train', '1', '--num-test', '1',
                                              '--image-size', '96', '64', '--classes', 'cat', 'dog'])
    load_tool('data/make_synthetic_imagenet').main([str(tmp_path / 'imagenet'), '--classes', 'cat', '--num-train',
                                                    '2', '--num-val', '1', '--image-size', '64'])
    out = capsys.readouterr().out
    assert 'wrote 1 trainval + 1 test images' in out and 'wrote 2 train + 1 val images of 1 classes' in out
    annotation = ET.parse(tmp_path / 'voc/VOCdevkit/VOC2007/Annotations/000002.xml').getroot()
    assert (annotation.findtext('size/width'), annotation.findtext('size/height')) == ('96', '64')
    assert {o.findtext('name') for o in annotation.iter('object')} <= {'cat', 'dog'}
    assert len(list((tmp_path / 'imagenet/train/n00000000').glob('*.JPEG'))) == 2
    assert (tmp_path / 'imagenet/val.txt').read_text() == 'n00000000/ILSVRC2012_val_00000001.JPEG 0\n'


def test_voc_tool_bad_arguments(tmp_path, load_tool, capsys):
    tool = load_tool('data/make_synthetic_voc')
    code, err = run_tool(tool, [str(tmp_path), '--num-train', '0'], capsys)
    assert code == 2 and 'error: num_train must be a positive integer, got 0' in err
    code, err = run_tool(tool, [str(tmp_path), '--image-size', '320', '32'], capsys)
    assert code == 2 and 'both sides must be at least 64 pixels' in err
    assert not (tmp_path / 'VOCdevkit').exists()


def test_imagenet_tool_bad_arguments(tmp_path, load_tool, capsys):
    tool = load_tool('data/make_synthetic_imagenet')
    code, err = run_tool(tool, [str(tmp_path), '--image-size', '64', '64', '3'], capsys)
    assert code == 2 and 'error: --image-size takes one SIDE or WIDTH HEIGHT, got 3 values' in err
    code, err = run_tool(tool, [str(tmp_path), '--classes', *'abcdefg'], capsys)
    assert code == 2 and 'between 1 and 6 class names are drawable' in err
    (tmp_path / 'train').mkdir()  # a dataset there already: replaced only on request
    code, err = run_tool(tool, [str(tmp_path), '--image-size', '64'], capsys)
    assert code == 2 and 'already holds' in err and '--overwrite' in err
    assert not (tmp_path / 'val').exists()
