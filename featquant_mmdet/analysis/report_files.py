"""The files an analysis tool leaves behind: a Markdown table with its header, a CSV and a figure, in one folder.

Shared by ``tools/analysis/feature_moments.py`` and ``tools/analysis/alpha_report.py`` so that both print and write
their results the same way.
"""
import os
import os.path as osp
from typing import Callable, Tuple


def write_report_files(out_dir: str, header: str, table: str, md_name: str, csv_name: str, png_name: str,
                       write_csv: Callable[[str], None], write_png: Callable[[str], None]) -> Tuple[str, str, str]:
    """Print ``header`` and the Markdown ``table``; write them to ``OUT_DIR/md_name``, call ``write_csv(path)`` and
    ``write_png(path)`` for the other two files; print and return the three paths."""
    os.makedirs(out_dir, exist_ok=True)
    print(f'{header}\n\n{table}')
    paths = tuple(osp.join(out_dir, name) for name in (md_name, csv_name, png_name))
    with open(paths[0], 'w') as f:
        f.write(f'{header}\n\n{table}\n')
    write_csv(paths[1])
    write_png(paths[2])
    print(f'\nwrote {", ".join(paths)}')
    return paths


def finish_figure(fig, axes, used: int, title: str, path: str) -> None:
    """Blank the panels after the first ``used``, add the title, save ``path`` (100 dpi) and close the figure."""
    import matplotlib.pyplot as plt
    for ax in list(axes.flat)[used:]:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
