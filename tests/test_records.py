"""Tests for svae_bench.records: atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from svae_bench.records import write_bytes_atomic, write_json_atomic


def test_atomic_write_has_the_usual_permissions_and_leaves_no_temp_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "sub" / "a.bin", b"abc")
        write_json_atomic(tmp_path / "sub" / "r.json", {"x": 1})
    finally:
        os.umask(old)
    for name in ("a.bin", "r.json"):
        assert stat.S_IMODE((tmp_path / "sub" / name).stat().st_mode) == 0o644  # not mkstemp's 0600
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.bin", "r.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "r.json"
    write_json_atomic(target, {"old": True})

    def broken_replace(src, dst):
        assert Path(src).read_bytes().startswith(b'{\n  "new"')  # the new content was fully written first
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_json_atomic(target, {"new": True})
    assert target.read_text().startswith('{\n  "old": true')
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
