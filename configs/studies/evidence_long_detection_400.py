# Detectors trained twice as long (400 iterations instead of 200) from the same 48-epoch classifiers as
# configs/studies/evidence_long_detection.py. There ZF-POW-1-sqrt's detectors were still 10.4 [-26.4, +5.5] mAP points
# below ZF's on Original and worse under five distortions; its classifiers caught up with ZF's only when trained
# longer. Is the detectors' gap, too, a matter of training length? Everything else is that spec's:
#
#   python tools/study.py configs/studies/evidence_long_detection_400.py --work-dir work_dirs/evidence_long_detection
#
# (in the same work dir the data, the 48-epoch classifiers, the saliency classifier and the classifier sweeps are
# reused: their steps' commands are unchanged; the detectors and their sweeps are redone). Results:
# docs/robustness_study.md ("Longer training: the detection track").
_base_ = ['./evidence_long_detection.py']
detect = dict(iters=400)
weights = dict(train=390.0)
