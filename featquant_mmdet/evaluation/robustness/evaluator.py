"""Evaluation of cells with one Runner: model, checkpoint, evaluator and hooks built once, one test-loop pass per
cell with the cell's distortion injected into the test pipeline (:mod:`featquant_mmdet.distortions.inject`)."""
import copy
import time
from typing import Optional, Tuple

from mmengine.dataset import Compose

from ...distortions.inject import inject_distortion
from ...loading import build_runner
from ...stats.checks import StatsInputError
from ..corruptions import inject_corruption
from ..per_image import add_per_image_recorder
from .cells import Cell, is_corruption, saliency_distortions
from .errors import RobustnessError
from .results_file import config_name, jsonable


def check_test_config(cfg) -> None:
    """The config must define a test dataloader with a dataset, a test loop and a test evaluator."""
    missing = [key for key in ('test_dataloader', 'test_cfg', 'test_evaluator') if not cfg.get(key)]
    if missing:
        raise RobustnessError(f'config {config_name(cfg)!r} has no {", ".join(missing)}: a robustness sweep '
                              'evaluates the test split (set test_dataloader, test_cfg=dict(type="TestLoop") and '
                              'test_evaluator)')
    if not isinstance(cfg.test_dataloader.get('dataset'), dict):
        raise RobustnessError(f'config {config_name(cfg)!r}: test_dataloader has no dataset dict')


def build_sweep_runner(cfg, checkpoint: str):
    """The Runner of the config with the checkpoint to load (its own copy of the config)."""
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    return build_runner(cfg)


def load_checkpoint_strict(runner) -> None:
    """The runner's ``load_from`` into its model, every key and shape matching (mmengine's own loading, strict).

    mmengine's default (strict=False, as in ``tools/test.py``) only logs missing and unexpected keys: an HPOW
    checkpoint swept with the POW config ran as POW with alpha at its initial value. A sweep refuses that."""
    path = runner.cfg.load_from
    try:
        runner.load_checkpoint(path, strict=True)
    except RuntimeError as err:
        detail = ' '.join(str(err).split())
        raise RobustnessError(f'checkpoint {path} does not match the model of config {config_name(runner.cfg)!r} '
                              f'(a config without the options the model was trained with?): {detail[:600]}') from None


def _equal_except_pipeline(a: dict, b: dict) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k != 'pipeline'}  # noqa: E731
    return strip(a) == strip(b)


class CellEvaluator:
    """Evaluates cells with one Runner: the model and checkpoint are loaded once, each cell swaps the test loop's
    dataloader for one whose pipeline carries the cell's distortion (workers as configured).

    The test dataset is built once; a cell whose injected dataset config differs only in ``pipeline`` gets a
    shallow copy of it with the new pipeline (re-reading thousands of annotation files per cell would add to the
    sweep's time what the distortions are meant to be measured against). Anything else rebuilds the dataset.

    ``saliency``: ``dict(config=..., checkpoint=...)`` of the classifier for targeted occlusion.
    """

    def __init__(self, runner, seed: int = 0, saliency: Optional[dict] = None, metric: Optional[str] = None):
        self.runner = runner
        self.seed = seed
        self.saliency = saliency
        self.metric = metric
        self.recorder = None  # the per-image metric (featquant_mmdet/evaluation/per_image.py), if supported
        self.per_image_note = 'no metric key given: per-image data not kept'
        self.base_loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
        self._started = False

    def start(self) -> None:
        """Build the test loop (clean dataloader), run ``before_run`` hooks and load the checkpoint."""
        runner = self.runner
        self.loop = runner.test_loop  # mmengine builds the loop, its dataloader and evaluator on first access
        self.clean_dataset = self.loop.dataloader.dataset
        if self.metric is not None and self.recorder is None:
            try:  # a COCO annotation file without the test set's images: refused before any evaluation
                self.recorder, self.per_image_note = add_per_image_recorder(
                    self.loop.evaluator, self.metric, self.clean_dataset, runner.cfg.get('test_evaluator'))
            except StatsInputError as err:
                raise RobustnessError(str(err)) from None
        runner.call_hook('before_run')
        if runner.cfg.get('load_from'):
            load_checkpoint_strict(runner)
        self._started = True

    def finish(self) -> None:
        if self._started:
            self.runner.call_hook('after_run')
            self._started = False

    def loader_cfg(self, cell: Cell) -> dict:
        loader_cfg = copy.deepcopy(self.base_loader_cfg)
        if cell.distortion is None:
            return loader_cfg
        if is_corruption(cell.distortion):
            inject_corruption(loader_cfg, cell.distortion, cell.level, seed=self.seed)
            return loader_cfg
        kwargs = {}
        if cell.distortion in saliency_distortions():
            kwargs = dict(classifier=self.saliency['config'], checkpoint=self.saliency['checkpoint'])
        inject_distortion(loader_cfg, cell.distortion, level=cell.level, seed=self.seed, **kwargs)
        return loader_cfg

    def build_dataloader(self, cell: Cell):
        loader_cfg = self.loader_cfg(cell)
        dataset_cfg = loader_cfg['dataset']
        if isinstance(getattr(self.clean_dataset, 'pipeline', None), Compose) and _equal_except_pipeline(
                dataset_cfg, self.base_loader_cfg['dataset']):
            dataset = copy.copy(self.clean_dataset)  # shares the parsed annotations
            dataset.pipeline = Compose(dataset_cfg['pipeline'])
            loader_cfg['dataset'] = dataset
        randomness = self.runner.cfg.get('randomness') or {}
        return self.runner.build_dataloader(loader_cfg, seed=self.runner.seed,
                                            diff_rank_seed=randomness.get('diff_rank_seed', False))

    def evaluate(self, cell: Cell, per_image_path: Optional[str] = None) -> Tuple[dict, float, int]:
        """One pass of the test loop on ``cell``: (metrics, wall seconds incl. the dataloader build, images).

        ``per_image_path``: where the per-image recorder writes the cell's per-image file (rank 0);
        :attr:`last_per_image` is then ``{path, num_images, value}`` on rank 0 (None elsewhere or unsupported)."""
        if not self._started:
            self.start()
        start = time.perf_counter()
        self.loop.dataloader = self.build_dataloader(cell)
        self.last_per_image = None
        if self.recorder is not None:
            self.recorder.out_path, self.recorder.saved = per_image_path, None
        metrics = self.loop.run()
        if self.recorder is not None:
            self.last_per_image = self.recorder.saved
            exact = (self.recorder.saved or {}).get('metrics', {})  # COCO: pycocotools' values, unrounded
            metrics = {k: exact.get(k, v) for k, v in metrics.items()}
        return jsonable(dict(metrics)), time.perf_counter() - start, len(self.loop.dataloader.dataset)
