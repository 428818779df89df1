"""One writer at a time: a second process is refused (or waits) while a lock is held, a killed holder
never leaves it held, and the lock leaves nothing behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_pipeline import quiet_run

from domainft import atomic
from domainft.errors import DomainftError
from domainft.locks import Busy, exclusive

HOLD = """
import sys
from pathlib import Path
from domainft.locks import exclusive
with exclusive(Path(sys.argv[1]), holder="the holder process"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder():
    """Start a process that holds the lock on a path until it is told to stop (or killed)."""
    procs = []

    def hold(target):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_held_lock_is_refused_with_its_holder_and_released_by_a_kill(tmp_path, holder):
    target = tmp_path / "out" / "bundle"
    proc = holder(target)
    with pytest.raises(Busy, match="the holder process"), exclusive(target, wait=False):
        pass
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: its flock goes with it
    proc.wait()
    with exclusive(target, wait=False):
        pass
    assert list((tmp_path / "out").iterdir()) == []  # the lock file the kill left was taken and removed


def test_a_waiting_process_goes_on_when_the_holder_ends(tmp_path, holder):
    target = tmp_path / "bundle"
    proc = holder(target)
    threading.Timer(0.3, proc.stdin.close).start()  # the holder ends its block a moment later
    start = time.monotonic()
    with exclusive(target, wait=True):
        waited = time.monotonic() - start
    assert waited >= 0.2 and proc.wait() == 0
    assert list(tmp_path.iterdir()) == []


def test_the_same_thread_nests_and_another_thread_contends(tmp_path):
    target = tmp_path / "run"
    with exclusive(target, wait=False), exclusive(target, wait=False):  # the teacher's run inside the student's
        seen = []

        def other():
            try:
                with exclusive(target, wait=False):
                    seen.append("took it")
            except Busy:
                seen.append("busy")

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen == ["busy"]
    assert list(tmp_path.iterdir()) == []


def test_two_writers_of_one_staged_directory_take_turns(tmp_path):
    final = tmp_path / "bundle"
    inside = threading.Event()
    errors = []

    def write(name, files, pause):
        try:
            with atomic.staged_dir(final) as tmp:
                inside.set()
                for n in range(files):
                    (tmp / f"{name}-{n}.txt").write_text(name)
                    time.sleep(pause)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    first = threading.Thread(target=write, args=("first", 5, 0.05))
    first.start()
    inside.wait()
    second = threading.Thread(target=write, args=("second", 3, 0))
    second.start()  # before the fix it cleared the first one's staging directory and published a mix
    first.join()
    second.join()
    assert errors == []
    assert sorted(p.name for p in final.iterdir()) == ["second-0.txt", "second-1.txt", "second-2.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_new_files_and_directories_get_the_umask_as_any_other(tmp_path):
    old = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
        with atomic.published_once(tmp_path / "cache") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o750


def test_a_second_run_into_a_held_output_dir_is_refused_and_writes_nothing(make_recipe, tmp_path, holder,
                                                                            monkeypatch):
    from test_bad_inputs import snapshot

    from domainft.rundir import run_lock_target

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "runs" / "finance"
    recipe = make_recipe({"output.dir": str(run_dir)})
    proc = holder(run_lock_target(run_dir))  # as a `domainft run` training into it does
    (tmp_path / "runs").mkdir()
    before = snapshot(tmp_path / "runs")
    with pytest.raises(DomainftError, match=r"output.dir: .*finance is in use by another domainft run "
                                            r"\(the holder process\).*--set output.dir="):
        quiet_run(recipe)
    assert snapshot(tmp_path / "runs") == before  # modification times included
    proc.stdin.close()
    assert proc.wait() == 0
    result = quiet_run(recipe)  # once it has ended, the run goes ahead
    assert result.test and [p.name for p in (tmp_path / "runs").iterdir()] == ["finance"]
    assert not (tmp_path / "cache" / "locks").exists()  # its lock is gone, and the folder made for it


def test_an_export_of_a_run_that_a_run_holds_is_refused_and_writes_nothing(make_recipe, tmp_path, holder,
                                                                            monkeypatch):
    from domainft.export import export_run
    from domainft.rundir import run_lock_target

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    result = quiet_run(make_recipe({"output.dir": str(tmp_path / "run"), "export.enabled": False}))
    before = sorted(p.name for p in result.run_dir.iterdir())
    proc = holder(run_lock_target(result.run_dir))  # a run replacing or resuming it, in another terminal
    with pytest.raises(DomainftError, match=r"export: .*run is in use by a domainft run \(the holder process\); "
                                            r"export it once that run has ended"):
        export_run(result.run_dir, echo=lambda *a: None)
    assert sorted(p.name for p in result.run_dir.iterdir()) == before  # no bundle, no staging
    proc.stdin.close()
    assert proc.wait() == 0
    assert export_run(result.run_dir, echo=lambda *a: None).dir.is_dir()  # once it has ended
