"""Tables and plots of robustness results in the paper's layout.

Table (Markdown and CSV): one row per model; columns ``Clean`` (``Original`` for detectors, as in Table 3), each
distortion's mean over its levels in the paper's order (Table 2: M.Blur ... Occ.), the mixtures (Table 2's
``Mix.``; Table 3's ``Mix.Minor`` / ``Mix.Heavy``), then mPC, rPC and, given a reference model, mCE. Values are
percentages (mAP and accuracy, as the paper prints them). A second block gives each model's difference to the
first one (the paper's "+POW-1 gains 2.2% - 3.3% mAP").

Figure (PNG, like the paper's Figure 4): the metric against the distortion level, level 0 being the clean test
set, one panel per distortion, one line per model; mixtures, having no levels, share one extra panel.
"""
import csv
import io
import math
from typing import List, Optional, Sequence, Tuple

from ...distortions.levels import DISPLAY_NAMES, DISTORTION_NAMES
from .cells import Cell, cells_by_distortion, mixture_names
from .errors import RobustnessError
from .results_file import load_results
from .summary import metric_full_scale, summarize


def column_title(name: str) -> str:
    """The paper's column title of a distortion (``levels.DISPLAY_NAMES``), else the name itself."""
    return DISPLAY_NAMES.get(name, name)


def _paper_order() -> List[str]:
    return list(DISTORTION_NAMES) + list(mixture_names())


def load_all(paths: Sequence[str]) -> List[dict]:
    return [load_results(p) for p in paths]


def check_comparable(results: Sequence[dict], labels: Sequence[str], metric: Optional[str] = None) -> str:
    """All results must report the same metric on the same test data with the same distortion draws."""
    if not results:
        raise RobustnessError('no results file given')
    if len(labels) != len(results):
        raise RobustnessError(f'{len(labels)} labels for {len(results)} results files: give one label per file')
    metric = metric or results[0]['metric']
    first = results[0]['identity']
    for label, res in zip(labels, results):
        if 'clean' not in res['cells']:
            raise RobustnessError(f'{label}: the results have no clean cell (an unfinished sweep?)')
        if metric not in res['cells']['clean']['metrics']:
            raise RobustnessError(f'{label}: metric {metric!r} not in its results '
                                  f'{sorted(res["cells"]["clean"]["metrics"])}')
        for field in ('test_data', 'distortion_seed'):
            if res['identity'].get(field) != first.get(field):
                raise RobustnessError(f'{label}: {field} {res["identity"].get(field)!r} differs from '
                                      f'{labels[0]}\'s {first.get(field)!r}: the numbers are not comparable')
    return metric


def distortion_columns(results: Sequence[dict]) -> List[str]:
    """The distortions any of ``results`` has, in the paper's order (others after), the mixtures last."""
    present: List[str] = []
    for res in results:
        present.extend(n for n in cells_by_distortion(res['cells']) if n not in present)
    order = _paper_order()
    names = [n for n in order if n in present] + [n for n in present if n not in order]
    return [n for n in names if n not in mixture_names()] + [n for n in names if n in mixture_names()]


def comparison_table(results: Sequence[dict], labels: Sequence[str], metric: Optional[str] = None,
                     reference: Optional[dict] = None) -> Tuple[List[str], List[List[Optional[float]]]]:
    """``(column titles, one row of values per model)``; percentages, ``None`` where a model lacks a cell."""
    metric = check_comparable(results, labels, metric)
    scale = 100.0 / metric_full_scale(metric)
    names = distortion_columns(results)
    clean_title = 'Clean' if results[0]['task'] == 'classification' else 'Original'
    columns = [clean_title] + [column_title(n) for n in names] + ['mPC', 'rPC']
    with_ce = reference is not None
    if with_ce:
        columns.append('mCE')
    rows = []
    for res in results:
        summary = summarize(res, metric, reference)
        per = summary['per_distortion']
        row = [_scaled(summary['P'], scale)] + [_scaled(per[n]['mean'], scale) if n in per else None
                                                for n in names]
        row += [_scaled(summary['mPC'], scale), _scaled(summary['rPC'], 100.0)]
        if with_ce:
            row.append(_scaled(summary['mCE'], 100.0))
        rows.append(row)
    return columns, rows


def _scaled(value, scale):
    return None if value is None else value * scale


def differences(rows: Sequence[Sequence[Optional[float]]]) -> List[List[Optional[float]]]:
    """Each row after the first minus the first row (``None`` where either is missing)."""
    first = rows[0]
    return [[None if a is None or b is None else a - b for a, b in zip(row, first)] for row in rows[1:]]


def _cell_text(value, signed=False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:+.2f}' if signed else f'{value:.2f}'


def to_markdown(columns, rows, labels, metric: str) -> str:
    """The table and, with two models or more, the differences to the first one."""
    def table(head, body_rows, row_labels, signed):
        lines = ['| ' + ' | '.join([head] + list(columns)) + ' |', '|' + '---|' * (len(columns) + 1)]
        for label, row in zip(row_labels, body_rows):
            lines.append('| ' + ' | '.join([label] + [_cell_text(v, signed) for v in row]) + ' |')
        return lines

    out = [f'{metric} (%); distortion columns: mean over levels; mPC: mean over distortions; rPC = mPC / clean',
           ''] + table('Model', rows, labels, False)
    if len(rows) > 1:
        out += ['', f'Difference to {labels[0]} (percentage points)', '']
        out += table('Model', differences(rows), labels[1:], True)
    return '\n'.join(out) + '\n'


def to_csv(columns, rows, labels) -> str:
    """Rows ``model,row,<columns>``: ``row`` is ``value``, or ``diff_to_<first model>`` for the differences."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['model', 'row'] + list(columns))
    for label, row in zip(labels, rows):
        writer.writerow([label, 'value'] + ['' if v is None else f'{v:.4f}' for v in row])
    for label, row in zip(labels[1:], differences(rows) if len(rows) > 1 else []):
        writer.writerow([label, f'diff_to_{labels[0]}'] + ['' if v is None else f'{v:.4f}' for v in row])
    return buf.getvalue()


def level_curves(result: dict, metric: str) -> dict:
    """``{distortion: ([0, levels...], [clean, values...])}`` in percent, for distortions that have levels."""
    scale = 100.0 / metric_full_scale(metric)
    cells = result['cells']
    clean = cells['clean']['metrics'][metric] * scale
    curves = {}
    for name, by_level in cells_by_distortion(cells).items():
        if name in mixture_names():
            continue
        levels = sorted(level for level in by_level if level is not None)
        curves[name] = ([0] + levels, [clean] + [cells[by_level[lv]]['metrics'][metric] * scale for lv in levels])
    return curves


def plot_levels(results: Sequence[dict], labels: Sequence[str], out_path: str, metric: Optional[str] = None,
                ncols: int = 4) -> str:
    """Figure-4-style PNG: one panel per distortion (metric vs level), one line per model; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = check_comparable(results, labels, metric)
    scale = 100.0 / metric_full_scale(metric)
    curves = [level_curves(res, metric) for res in results]
    order = _paper_order()
    names = []
    for c in curves:
        names.extend(n for n in c if n not in names)
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    mixtures = [m for m in mixture_names() if any(Cell(m).key in res['cells'] for res in results)]
    panels = names + (['mixtures'] if mixtures else [])
    if not panels:
        raise RobustnessError('nothing to plot: the results have no distorted cell')
    ncols = min(ncols, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.7 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        if panel == 'mixtures':
            ticks = ['clean'] + mixtures
            for label, res in zip(labels, results):
                ys = [res['cells'][Cell(m).key]['metrics'][metric] * scale if Cell(m).key in res['cells']
                      else float('nan') for m in ticks[1:]]
                ax.plot(range(len(ticks)), [res['cells']['clean']['metrics'][metric] * scale] + ys, marker='o',
                        label=label)
            ax.set_xticks(range(len(ticks)))
            ax.set_xticklabels(['Clean'] + [column_title(m) for m in mixtures])
            ax.set_title('Mixtures')
        else:
            for label, c in zip(labels, curves):
                if panel in c:
                    ax.plot(*c[panel], marker='o', label=label)
            ax.set_xticks(sorted({x for c in curves if panel in c for x in c[panel][0]}))
            ax.set_xlabel('level (0: clean)')
            ax.set_title(column_title(panel))
        ax.set_ylabel(f'{metric} (%)')
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out_path)
    return out_path


def write_table_with_paper(stem: str, table: dict, paper: dict, columns: Sequence[str], caption: str,
                           paper_caption: str) -> str:
    """``<stem>.md`` (our rows, then the paper's) and ``<stem>.csv`` (ours) of ``{row label: values}`` tables in
    percent; returns the Markdown."""
    head = ['| Models | ' + ' | '.join(columns) + ' |', '|---|' + '---|' * len(columns)]

    def rows(values: dict) -> List[str]:
        return [f'| {label} | ' + ' | '.join(f'{v:.1f}' for v in row) + ' |' for label, row in values.items()]

    markdown = '\n'.join([caption, '', *head, *rows(table), '', paper_caption, '', *head, *rows(paper)]) + '\n'
    with open(stem + '.md', 'w') as f:
        f.write(markdown)
    with open(stem + '.csv', 'w') as f:
        f.write('model,' + ','.join(columns) + '\n')
        f.writelines(f'{label},' + ','.join(f'{v:.4f}' for v in row) + '\n' for label, row in table.items())
    return markdown
