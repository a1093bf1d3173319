"""The photo style of the synthetic datasets: objects cut from photographs, with exact boxes (drawn and checked)."""
import os.path as osp

import cv2
import numpy as np
import pytest

from featquant_mmdet.datasets.photo_objects import (DEFAULT_PHOTO_CLASSES, PHOTO_CLASSES, paste_photo_object,
                                                    photo_background, photo_object_sources)
from featquant_mmdet.datasets.synthetic_voc import draw_image, make_voc_dataset


def test_every_photo_object_has_a_nonempty_tight_mask():
    for name in PHOTO_CLASSES:
        sources = photo_object_sources(name)
        assert sources, name
        for patch, mask in sources:
            assert patch.shape[:2] == mask.shape and patch.dtype == np.uint8 and mask.dtype == np.uint8
            # cropped to the mask: every border row/column holds a mask pixel
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any(), name
            assert 0.05 < mask.mean() <= 1.0, name
    assert len(photo_object_sources('coin')) >= 15  # skimage's coins: one object per separated coin
    # GrabCut found a person-sized region, not the whole rectangle nor a speck
    assert 0.3 < photo_object_sources('person')[0][1].mean() < 0.95


def test_pasted_mask_bounding_box_is_the_annotation_box_and_lies_in_the_image(tmp_path):
    width, height = 200, 150
    sheet = []
    for index in range(12):
        seed = (7, 0, index)
        img, objects, masks = draw_image(np.random.default_rng(seed), width, height, 3, 'photo', return_masks=True)
        assert len(objects) == len(masks) >= 1
        # the background alone, from the same first draws of the same generator
        background = np.clip(photo_background(np.random.default_rng(seed), width, height), 0, 255)
        changed = np.abs(img.astype(np.float32) - background).max(axis=2) > 40  # beyond the sensor noise (sd 3)
        union = np.zeros((height, width), bool)
        for (label, (x1, y1, x2, y2)), mask in zip(objects, masks):
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
            assert not (union & (mask > 0)).any()  # objects do not overlap
            union |= mask > 0
        # pixels that changed a lot lie on the objects (pasted photo vs background), and the objects changed them
        assert changed[~union].mean() < 0.002
        assert changed[union].mean() > 0.2
        vis = img.copy()
        for label, (x1, y1, x2, y2) in objects:
            cv2.rectangle(vis, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 0), 1)
            cv2.putText(vis, DEFAULT_PHOTO_CLASSES[label], (x1 + 2, y1 + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 255, 0), 1)
        sheet.append(vis)
    path = str(tmp_path / 'photo_boxes.png')
    assert cv2.imwrite(path, np.vstack([np.hstack(sheet[i:i + 4]) for i in range(0, 12, 4)]))
    assert cv2.imread(path).shape == (3 * height, 4 * width, 3)


def test_voc_files_of_the_photo_style_read_back_with_the_drawn_boxes(tmp_path, mmdet_scope):
    """Written by the tool's CLI, read by mmdet's VOCDataset: the boxes are the masks' boxes (VOC is 1-based)."""
    from mmdet.datasets import VOCDataset

    from featquant_mmdet.datasets.synthetic_voc import main
    main([str(tmp_path), '--style', 'photo', '--num-train', '3', '--num-test', '1', '--image-size', '160', '120',
          '--seed', '5'])
    voc = osp.join(tmp_path, 'VOCdevkit', 'VOC2007')
    dataset = VOCDataset(data_root=voc, ann_file='ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root=''),
                         pipeline=[], test_mode=True)
    assert len(dataset) == 3
    for index in range(3):
        info = dataset.get_data_info(index)
        _, objects, masks = draw_image(np.random.default_rng((5, 0, index)), 160, 120, 3, 'photo',
                                       DEFAULT_PHOTO_CLASSES, return_masks=True)
        got = sorted((inst['bbox_label'], tuple(inst['bbox'])) for inst in info['instances'])
        # the XML holds xmin = x1 + 1 .. xmax = x2 (1-based, inclusive); mmdet subtracts 1 from all four
        want = sorted((dataset.metainfo['classes'].index(DEFAULT_PHOTO_CLASSES[label]),
                       (float(x1), float(y1), float(x2 - 1), float(y2 - 1))) for label, (x1, y1, x2, y2) in objects)
        assert got == want
        image = cv2.imread(osp.join(voc, 'JPEGImages', f'{index + 1:06d}.jpg'))
        assert image.shape == (120, 160, 3)


def test_photo_style_options_and_errors(tmp_path):
    from featquant_mmdet.datasets.synthetic_imagenet import draw_class_image, make_imagenet_dataset
    info = make_imagenet_dataset(str(tmp_path / 'in'), num_train_per_class=1, num_val_per_class=1, image_size=64,
                                 style='photo')
    assert info['classes'] == PHOTO_CLASSES and info['classes'][:3] == DEFAULT_PHOTO_CLASSES
    img = draw_class_image(np.random.default_rng(0), 80, 64, 2, 'photo', PHOTO_CLASSES)
    assert img.shape == (64, 80, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match='distinct names among person, cat, horse'):
        make_voc_dataset(str(tmp_path / 'v'), 1, 1, 96, classes=('person', 'dragon'), style='photo')
    with pytest.raises(ValueError, match="style must be one of \\('shapes', 'photo'\\)"):
        make_voc_dataset(str(tmp_path / 'v'), 1, 1, 96, style='oil painting')
    with pytest.raises(ValueError, match='only the photo style keeps the masks'):
        draw_image(np.random.default_rng(0), 96, 96, 3, 'shapes', return_masks=True)
    box = paste_photo_object(np.zeros((50, 50, 3), np.float32), 'rocket', 5, 5, 40, np.random.default_rng(0))
    assert 38 <= box[3] - box[1] <= 40 and box[2] - box[0] < 10  # a tall, thin object keeps its aspect


def test_cli_style_errors_exit_2(capsys):
    from featquant_mmdet.datasets.synthetic_voc import main
    for argv, message in ((['out', '--style', 'watercolour'], "invalid choice: 'watercolour'"),
                          (['out', '--style', 'photo', '--classes', 'dragon'], 'distinct names among person')):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and 'Traceback' not in err
