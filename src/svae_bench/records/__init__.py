"""Run records, the bottom layer: file names, atomic writes, the record, run status and locks, provenance.

Everything that reads or writes the files of a run directory goes through this
package; nothing here imports torch (except :func:`save_torch_atomic`, lazily),
Hydra or any other layer of svae-bench.
"""

from __future__ import annotations

from .atomic import (
    MAX_RECORD_BYTES,
    UnreadableJSON,
    read_json_file,
    save_torch_atomic,
    write_bytes_atomic,
    write_csv_atomic,
    write_json_atomic,
)
from .files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    STATE_FILE,
    STATUS_FILE,
    format_number,
)
from .provenance import git_commit, versions
from .record import (
    SCHEMA_VERSION,
    SEED_MAX,
    RecordError,
    check_record,
    complete_record,
    failed_record,
    finite,
    is_complete_record,
    read_result,
    shown,
)
from .status import STATES, RunLock, is_locked, read_status, run_state, write_status

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "LOG_FILE",
    "MAX_RECORD_BYTES",
    "METRICS_FILE",
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "SEED_MAX",
    "STATES",
    "STATE_FILE",
    "STATUS_FILE",
    "RecordError",
    "RunLock",
    "UnreadableJSON",
    "check_record",
    "complete_record",
    "failed_record",
    "finite",
    "format_number",
    "git_commit",
    "is_complete_record",
    "is_locked",
    "read_json_file",
    "read_result",
    "read_status",
    "run_state",
    "save_torch_atomic",
    "shown",
    "versions",
    "write_bytes_atomic",
    "write_csv_atomic",
    "write_json_atomic",
    "write_status",
]
