# The evidence study's classification track alone (configs/studies/evidence.py trains these classifiers, 24 epochs,
# and then detectors from them): ZF and ZF-POW-1-sqrt, 5 seeds, the same data, settings and sweeps, rerun for issue
# 27 to measure targeted occlusion with neutral masks (a plain ResNet-18's) and each model's own, since the evidence
# study's +15.3 occlusion gain was measured with a plain ZF's masks:
#
#   python tools/study.py configs/studies/evidence_24ep.py --work-dir work_dirs/evidence_24ep
#
# Not run yet (session 28 ran out of time: trainings took ~3x the CPU time measured in earlier sessions on this
# machine type, see evidence_long.py); about 1 h on 2 cores at that speed. Results go to docs/robustness_study.md
# ("Targeted occlusion with neutral masks").
_base_ = ['./evidence_long.py']
pretrain = dict(epochs=24)
weights = dict(pretrain=175.0, train=175.0)
