"""How a warm interpreter tells that a module it imported changed on disk
(python/jobd/_worker.py's Modules): watched with inotify on local file
systems, checked with stat elsewhere; both must see every kind of edit."""

import importlib
import os
import sys

import pytest

from jobd import _worker


@pytest.fixture(params=["inotify", "stat"])
def modules(request, tmp_path, monkeypatch):
    """A Modules that knows a freshly imported module `edited_module` in
    tmp_path; with params "stat", as where inotify cannot watch (NFS)."""
    (tmp_path / "edited_module.py").write_text("VALUE = 1\n")
    (tmp_path / "neighbour.txt").write_text("not a module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "edited_module", raising=False)
    if request.param == "stat":
        monkeypatch.setattr(_worker.Watches, "local", lambda self, folder: False)
    found = _worker.Modules()
    importlib.invalidate_caches()
    import edited_module  # noqa: F401
    found.note_new()
    assert (found.watches is not None and bool(found.watches.folders)) == \
        (request.param == "inotify"), "the module's folder is watched only where inotify works"
    assert not found.changed(), "nothing changed yet"
    yield found, tmp_path / "edited_module.py"
    sys.modules.pop("edited_module", None)


def test_an_edit_in_place_is_seen(modules):
    found, path = modules
    path.write_text("VALUE = 2\n")  # same size: the mtime (or the event) tells
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert found.changed()


def test_a_file_replaced_by_rename_is_seen(modules):
    """As editors save: a new file renamed over the old one."""
    found, path = modules
    new = path.with_name("edited_module.py.new")
    new.write_text("VALUE = 3\n")
    os.replace(new, path)
    assert found.changed()


def test_a_deleted_module_is_seen(modules):
    found, path = modules
    path.unlink()
    assert found.changed()


def test_other_files_in_the_folder_change_nothing(modules):
    found, path = modules
    (path.parent / "neighbour.txt").write_text("edited, still not a module\n")
    (path.parent / "other.py").write_text("X = 1\n")
    assert not found.changed()


def test_logs_written_beside_a_module_change_nothing(modules):
    """A program's logs written in its modules' folder while jobs run: two
    written in turn make events the kernel cannot merge, more than its queue
    holds, and an overflow would look like any change (the interpreter would
    be replaced). A module saved is seen when it is closed (or renamed)."""
    found, path = modules
    with open("/proc/sys/fs/inotify/max_queued_events") as limit:
        writes = int(limit.read()) + 1000
    with open(path.parent / "a.log", "w") as a, open(path.parent / "b.log", "w") as b:
        for line in range(writes):
            for log in (a, b):
                log.write(f"{line}\n")
                log.flush()
    assert not found.changed()


def test_a_module_changed_after_its_import_but_before_the_look_is_seen(tmp_path, monkeypatch):
    """A job's function imports a module that is then edited before the next
    job's check: noted by that check, so only its mtime can tell."""
    monkeypatch.syspath_prepend(str(tmp_path))
    found = _worker.Modules()
    assert not found.changed()
    path = tmp_path / "late_module.py"
    path.write_text("VALUE = 1\n")
    os.utime(path, ns=(0, found.since + 10**9))  # as if edited after the last look
    importlib.invalidate_caches()
    import late_module  # noqa: F401
    try:
        assert found.changed()
    finally:
        sys.modules.pop("late_module", None)
