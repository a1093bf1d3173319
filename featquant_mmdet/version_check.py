"""The mmcv / mmdet / mmengine releases featquant_mmdet works with, checked on ``import featquant_mmdet``.

The plugin subclasses mmdet's heads and detectors and patches two mmengine internals (``featquant_mmdet.compat``,
``featquant_mmdet.package_configs``), so a release outside these ranges fails in ways far from their cause. The
ranges are those of ``requirements/mminstall.txt`` (OpenMMLab's file for ``mim install``; a test keeps the two
equal); checked together: mmcv 2.1.0, mmdet 3.3.0, mmengine 0.10.7 (``requirements/constraints.txt``).

Versions are read from the installed distributions' metadata, without importing the packages: an mmdet that
rejects the installed mmcv fails at its own import with mmdet's message, which this check pre-empts with one
that names all three ranges.
"""
import re
from importlib import metadata
from typing import Callable, Dict, Optional, Tuple

# distribution -> (lowest accepted version, first version not accepted)
ACCEPTED_VERSIONS: Dict[str, Tuple[str, str]] = {
    'mmcv': ('2.0.0', '2.2.0'),  # mmdet 3.x asserts mmcv < 2.2.0
    'mmdet': ('3.0.0', '3.4.0'),
    'mmengine': ('0.10.0', '1.0.0'),
}


class IncompatibleVersionError(ImportError):
    """An installed mmcv / mmdet / mmengine is missing or outside the range featquant_mmdet accepts."""


def accepted_range(package: str) -> str:
    """``'>=2.0.0, <2.2.0'``: the accepted range of ``package`` in pip's notation."""
    low, high = ACCEPTED_VERSIONS[package]
    return f'>={low}, <{high}'


def version_key(version: str) -> Tuple[Tuple[int, ...], int]:
    """Sort key of a version string: the release numbers, then 0 for a pre-release ('2.0.0rc4', '1.0.0.dev0')
    and 1 for the release itself, so that ``2.0.0rc4 < 2.0.0 < 2.0.1``. Local parts ('+cu121') are ignored."""
    match = re.match(r'v?(\d+(?:\.\d+)*)(.*)', version.strip())
    if match is None:
        raise ValueError(f'cannot read the version {version!r}')
    release = tuple(int(part) for part in match.group(1).split('.'))
    release += (0, ) * (3 - len(release))
    rest = match.group(2).split('+', 1)[0].lstrip('.').lower()
    is_pre = rest.startswith(('a', 'b', 'c', 'rc', 'dev', 'pre', 'alpha', 'beta'))
    return release, 0 if is_pre else 1


def _installed_version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_dependency_versions(installed_version: Callable[[str], Optional[str]] = _installed_version) -> None:
    """Raise :class:`IncompatibleVersionError` naming each package that is missing or outside its range.

    Args:
        installed_version: ``package -> version string`` (``None`` when not installed); the default reads the
            installed distributions' metadata.
    """
    problems = []
    for package, (low, high) in ACCEPTED_VERSIONS.items():
        version = installed_version(package)
        if version is None:
            problems.append(f'{package} is not installed (featquant_mmdet needs {package}{accepted_range(package)})')
        # as pip reads '<high': pre-releases of `high` itself (1.0.0rc0 for <1.0.0) are out of range too
        elif not (version_key(low) <= version_key(version) and version_key(version)[0] < version_key(high)[0]):
            problems.append(f'{package} {version} is installed, featquant_mmdet needs '
                            f'{package}{accepted_range(package)}')
    if problems:
        raise IncompatibleVersionError(
            '; '.join(problems) + '. Install versions in range (requirements/mminstall.txt; the tested combination '
            'is in requirements/constraints.txt: mmcv 2.1.0, mmdet 3.3.0, mmengine 0.10.7).')
