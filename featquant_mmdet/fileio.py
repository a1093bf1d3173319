"""Small file helpers shared by the robustness sweep and the stage runner (standard library only)."""
import datetime
import json
import os
import os.path as osp
from typing import Optional


def utc_now() -> str:
    """The current time, ISO 8601 in UTC with microseconds (sorts as text)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')


def write_json_atomic(path: str, data: dict) -> None:
    """Write to a temporary file in the same folder, flush it to disk and ``os.replace`` it: a reader (or a rerun
    after a kill) sees the old file or the new one, never half of one."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str) -> Optional[dict]:
    """The JSON object in ``path``, or None when the file is missing or not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
