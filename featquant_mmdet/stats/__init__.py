"""Statistics of robustness results: per-image data, bootstrap intervals, paired comparisons, seed studies.

* :mod:`.records`: the per-image file of a cell (``.npz``) and its one reader, dispatching by kind;
* :mod:`.voc_matches` / :mod:`.coco_records` / :mod:`.correctness`: per-image data kept per cell (VOC match
  records, pycocotools' per-image evaluations, classifier correctness) from which a cell's metric is recomputed on
  any multiset of test images, in time and memory linear in images + records (:mod:`.voc_reference`: the former
  quadratic VOC code, the tests' reference);
* :mod:`.bootstrap`: bootstrap over test images with one shared resample matrix (paired comparisons): intervals
  (percentile+point, the default, percentile, basic+point, basic, bc) and p-values;
* :mod:`.multiplicity`: Holm's adjustment over a table's columns and its verdicts;
* :mod:`.seeds`: mean and t-interval over training seeds, paired by seed;
* :mod:`.checks`: comparable inputs (test set, distortion seed, complete per-image data);
* :mod:`.format` / :mod:`.plot`: ``value [low, high]`` tables and Figure-4 curves with bands.

Pure numpy at import (mmdet's ``mean_ap`` is imported where it is reused); docs/statistics.md explains the method.
"""
