"""Faults injected while writing: a crash in the middle leaves the previous state intact.

Three writes matter: a model version (folder written under a temporary name, then renamed),
a call-list or scored file (temporary file, then renamed) and a batch of the prediction log
(one transaction). Each is interrupted two ways:

* the writing process is killed with SIGKILL at a point the test controls: the child process
  (this file run as a script) pauses there and says so, the test checks the write is under
  way, then kills it (no clean-up code can run);
* the write fails with an error half-way (a full disk), in the test's own process.

Afterwards the previous models, pointer, files and database rows must be exactly as before,
nothing half-written may be visible, and the next write must work.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from registry_support import assert_pointer_and_audit_agree, tiny_versions
from store_support import scored_week, sha
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core import config
from termdeposit.data import exports, fast_csv
from termdeposit.decisions import calllist
from termdeposit.modeling import model_storage, registry
from termdeposit.modeling.predict import ranks_of, score_file
from termdeposit.storage import database, store

PAUSED = "PAUSED"
#: Seconds a child may take to reach its pause point (imports, loading a model).
CHILD_TIMEOUT = 180


# -- the child process: runs one write and pauses in its middle ------------------------------


def _pause() -> None:
    print(PAUSED, flush=True)
    time.sleep(600)  # killed long before


def _child_save_model(point: str) -> None:
    model = registry.load_model()
    card = {
        k: v for k, v in model.card.items() if k not in ("version", "created", "artifact_sha256")
    }
    real_write = model_storage.LocalFolder._write_file

    def write_then_pause(path: Path, data: bytes) -> None:
        if point == "artifact" and path.name == config.MODEL_ARTIFACT:
            real_write(path, data[: len(data) // 2])
            _pause()
        if point == "checksums" and path.name == registry.CHECKSUM_FILE:
            _pause()
        real_write(path, data)

    model_storage.LocalFolder._write_file = staticmethod(write_then_pause)
    if point == "rename":
        model_storage.os.replace = lambda *args: _pause()
    registry.save_model(model.pipeline, card, model.reference())


def _child_promote(version: str) -> None:
    model_storage.os.replace = lambda *args: _pause()
    registry.promote(version, "this promotion is killed half-way")


class _HalfThenPause:
    """A file handle whose first write stores half the bytes, then the process pauses."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data: bytes) -> None:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        _pause()


def _child_write_export(target: str, payload: str) -> None:
    content = Path(payload).read_bytes()
    real_fdopen = os.fdopen
    exports.os.fdopen = lambda fd, mode: _HalfThenPause(real_fdopen(fd, mode))
    exports.write_atomic(Path(target), content)


def _child_log_batch(url: str, payload: str, file_sha: str, pause_after: str) -> None:
    frame = pd.read_parquet(payload)
    real_insert = database.bulk_insert

    def insert_then_pause(conn, table, columns, values):
        if table is not store.predictions:
            return real_insert(conn, table, columns, values)
        # The first rows of predictions are written in the open transaction, then it pauses.
        head = int(pause_after) * store.BATCH
        real_insert(conn, table, columns, [list(itertools.islice(v, head)) for v in values])
        _pause()

    database.bulk_insert = insert_then_pause
    store.open_store(url).log_scoring(
        frame, file_sha256=file_sha, model_version="v-killed", threshold=0.5
    )


CHILDREN = {
    "save-model": _child_save_model,
    "promote": _child_promote,
    "write-export": _child_write_export,
    "log-batch": _child_log_batch,
}


# -- helpers of the tests ------------------------------------------------------------------------


TESTS_DIR = str(Path(__file__).resolve().parents[1])


def child_argv(script: str, *args: object) -> list[str]:
    """The command running a test file as a child process (see its CHILDREN)."""
    return [sys.executable, str(Path(script).resolve()), *map(str, args)]


@pytest.fixture()
def children():
    """Start child processes (argv); any still running at the end of the test is killed."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], **options) -> subprocess.Popen:
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **options}
        env = dict(os.environ)
        # A child runs this file as a script: it imports the shared helpers from tests/.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, env.get("PYTHONPATH")]))
        child = subprocess.Popen(argv, env=env, **options)
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)


def wait_until_paused(child: subprocess.Popen) -> None:
    """Wait for the child to reach its pause point in the middle of the write."""
    with selectors.DefaultSelector() as waiting:  # epoll: any descriptor number
        waiting.register(child.stdout, selectors.EVENT_READ)
        ready = waiting.select(CHILD_TIMEOUT)
    line = child.stdout.readline().strip() if ready else ""
    if line != PAUSED:
        child.kill()
        _, err = child.communicate(timeout=30)
        pytest.fail(f"the child did not reach its pause point ({line!r}):\n{err[-3000:]}")


def kill(child: subprocess.Popen) -> None:
    """SIGKILL: the child stops at once, no finally block, no clean-up."""
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registry_state(root: Path) -> dict:
    """Everything the registry shows, and the bytes of every model file and the pointer (the
    journal's bytes aside: an interrupted promotion leaves its settled records there, while
    the history it shows, ``audit``, must not change)."""
    files = {
        str(p.relative_to(root)): _digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name != registry.AUDIT_FILE
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }
    return {
        "versions": registry.list_versions(root),
        "production": registry.production_version(root),
        "audit": registry.audit_log(root),
        "files": files,
    }


def assert_registry_usable(root: Path, state: dict) -> None:
    """Every listed version loads, and the command line lists exactly the same versions."""
    for version in state["versions"]:
        assert registry.load_model(version, root).version == version
    listed = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["version"] for r in rows] == state["versions"]
    assert [r["version"] for r in rows if r["production"]] == [state["production"]]


def card_of(model: registry.LoadedModel) -> dict:
    return {
        k: v for k, v in model.card.items() if k not in ("version", "created", "artifact_sha256")
    }


# -- (a) a model version -------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["artifact", "checksums", "rename"])
def test_model_save_killed_midway_leaves_the_registry_as_it_was(
    point, models_copy, production_model, children
):
    before = registry_state(models_copy)
    child = children(child_argv(__file__, "save-model", point))
    wait_until_paused(child)
    staging = [p for p in models_copy.iterdir() if p.name.startswith(".staging-")]
    assert len(staging) == 1, "the new version is being written"
    written = {p.name for p in staging[0].iterdir()}
    if point == "artifact":
        half = (staging[0] / config.MODEL_ARTIFACT).stat().st_size
        whole = (production_model.path / config.MODEL_ARTIFACT).stat().st_size
        assert 0 < half < whole and written == {config.MODEL_ARTIFACT}
    else:
        assert {config.MODEL_ARTIFACT, config.MODEL_CARD, registry.REFERENCE_FILE} <= written
    kill(child)

    after = registry_state(models_copy)
    assert after == before
    assert_registry_usable(models_copy, after)
    # The next save works next to the debris, and is the only new version.
    version = registry.save_model(
        production_model.pipeline, card_of(production_model), production_model.reference()
    )
    assert registry.list_versions(models_copy) == sorted([*before["versions"], version])
    assert registry.load_model(version).version == version


def test_promotion_killed_before_the_pointer_moves_changes_nothing(
    models_copy, production_model, children
):
    other = registry.save_model(
        production_model.pipeline, card_of(production_model), production_model.reference()
    )
    before = registry_state(models_copy)
    child = children(child_argv(__file__, "promote", other))
    wait_until_paused(child)
    pointers = [p for p in models_copy.iterdir() if p.name.startswith(".pointer-")]
    assert [p.read_text().strip() for p in pointers] == [other], "the new pointer is written"
    kill(child)

    after = registry_state(models_copy)
    assert after == before and after["production"] == production_model.version
    assert_registry_usable(models_copy, after)
    last = json.loads((models_copy / registry.AUDIT_FILE).read_text().splitlines()[-1])
    assert last["state"] == "abandoned", "the intent written ahead was settled as not done"


# -- (a') promotions and rollbacks killed at every step and at random moments -----------------


class _KillAt:
    """Stands in for the ``os`` module of the registry's storage: counts the calls that change
    files (open for writing, write, fsync, truncate, rename) and SIGKILLs the process at call
    number ``at``; a write killed first stores a random part of its bytes."""

    WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def __init__(self, at: float, rng: random.Random) -> None:
        self.at, self.rng, self.steps = at, rng, 0

    def __getattr__(self, name: str):
        return getattr(os, name)

    def _due(self) -> bool:
        self.steps += 1
        return self.steps == self.at

    @staticmethod
    def _die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def open(self, path, flags, mode=0o777):
        if flags & self.WRITING and self._due():
            self._die()
        return os.open(path, flags, mode)

    def write(self, fd, data):
        if self._due():
            os.write(fd, bytes(data)[: self.rng.randrange(len(data))])
            self._die()
        return os.write(fd, data)

    def fsync(self, fd):
        if self._due():
            self._die()
        return os.fsync(fd)

    def ftruncate(self, fd, length):
        if self._due():
            self._die()
        return os.ftruncate(fd, length)

    def replace(self, source, target):
        if self._due():
            self._die()
        return os.replace(source, target)


def _change(models: Path, op: tuple[str, str | None]) -> None:
    """One change of the production model: ("promote", version) or ("rollback", None)."""
    kind, version = op
    if kind == "promote":
        registry.promote(version, "killed at some point", models_dir=models, user="killer")
    else:
        registry.rollback(models_dir=models, reason="killed at some point", user="killer")


def _steps_of(op: tuple[str, str | None], models: Path, scratch: Path, monkeypatch) -> int:
    """How many file-changing calls the change makes (run on a copy of the registry)."""
    copy = scratch / f"dry-{len(list(scratch.iterdir()))}"
    shutil.copytree(models, copy)
    counter = _KillAt(math.inf, random.Random(0))
    with monkeypatch.context() as patch:
        patch.setattr(model_storage, "os", counter)
        _change(copy, op)
    return counter.steps


def _run_in_child(op: tuple[str, str | None], models: Path, at: float, seed: int) -> bool:
    """Run the change in a forked child killed at step ``at``; True if SIGKILL ended it."""
    pid = os.fork()
    if pid == 0:  # the child: no clean-up code may run after the kill
        code = 0
        try:
            model_storage.os = _KillAt(at, random.Random(seed))
            _change(models, op)
        except BaseException:  # noqa: BLE001 - the child reports by its exit code only
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _loop_in_child(models: Path, versions: list[str], seed: int, delay: float) -> bool:
    """Promote and roll back in a loop in a forked child, SIGKILLed after ``delay`` seconds."""
    pid = os.fork()
    if pid == 0:
        rng = random.Random(seed)
        try:
            while True:
                op = (
                    ("rollback", None) if rng.random() < 0.4 else ("promote", rng.choice(versions))
                )
                try:
                    _change(models, op)
                except registry.ModelError:
                    continue
        finally:
            os._exit(3)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _journal_lines(models: Path) -> tuple[list[dict], bool]:
    """The journal's complete records, raw (nothing settled), and whether a torn line ends it."""
    data = (models / registry.AUDIT_FILE).read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines()], len(complete) < len(data)


def _window(models: Path, seen: int, pointer_before: bytes) -> str:
    """Where the kill struck, read from the raw journal and pointer before anything settles."""
    records, torn = _journal_lines(models)
    new = records[seen:]
    moved = (models / config.PRODUCTION_POINTER).read_bytes() != pointer_before
    if not new:
        return "writing the intent" if torn else "before the intent"
    if new[-1].get("state") == "done":
        return "after done"
    if torn:
        return "writing done"
    return "pointer moved, done not written" if moved else "intent written, pointer not moved"


def _last_record(models: Path, seen: int) -> str:
    """What the last record a loop wrote says (a loop makes several changes before its kill)."""
    records, torn = _journal_lines(models)
    new = records[seen:]
    if torn:
        return "writing a record"
    if not new:
        return "before its first record"
    return "a change under way" if new[-1].get("state") == "pending" else "between changes"


def test_promotions_killed_at_any_point_leave_pointer_and_audit_agreeing(
    tmp_path, monkeypatch, capsys
):
    """SIGKILL at every file-changing step of a promotion and of a rollback (a write killed
    half-way), then at random moments of a promote/rollback loop. After each kill the registry
    is opened (which settles the interrupted change): the pointer names the version the audit
    history last put in production, exactly as a model of the history predicts, and
    'termdeposit models rollback' still goes back one step."""
    models = tmp_path / "models"
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(models))
    versions = tiny_versions(models, 4)
    for version in versions[:3]:
        registry.promote(version, "set-up", models_dir=models)
    expected = list(versions[:3])  # the history's model: promotions push, rollbacks pop
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runner = CliRunner()
    windows: Counter[str] = Counter()
    random_windows: Counter[str] = Counter()
    kills = {"every step": 0, "random moment": 0}

    def check_after_kill(op: tuple[str, str | None] | None, seen: int, before: list) -> None:
        production = assert_pointer_and_audit_agree(models)
        history = registry.audit_log(models)
        if op is not None and len(history) > len(before):  # the killed change took effect
            if op[0] == "promote" and expected[-1] != op[1]:
                expected.append(op[1])
            elif op[0] == "rollback":
                expected.pop()
        elif op is None:  # a loop: replay what took effect
            for entry in history[len(before) :]:
                if entry["action"] == "rollback":
                    expected.pop()
                elif expected[-1] != entry["version"]:
                    expected.append(entry["version"])
        assert production == expected[-1], (seed, expected, history[-3:])
        states = {}
        for record in _journal_lines(models)[0]:
            states[record.get("id")] = record.get("state", states.get(record.get("id")))
        assert "pending" not in states.values(), (seed, "an unfinished record was left")
        # 'models rollback' still works: one step back, or says there is no earlier model.
        result = runner.invoke(app, ["models", "rollback", "--reason", "after a kill"])
        if len(expected) >= 2:
            assert result.exit_code == 0, (seed, result.output)
            expected.pop()
            assert registry.production_version(models) == expected[-1], seed
        else:
            assert result.exit_code == 2 and "no earlier" in result.output, result.output
        assert_pointer_and_audit_agree(models)

    # 1. Every step of a promotion and of a rollback.
    for kind in ("promote", "rollback"):
        if kind == "rollback" and len(expected) < 2:
            registry.promote(versions[3], "so there is one to roll back", models_dir=models)
            expected.append(versions[3])
        op = ("promote", versions[3] if expected[-1] != versions[3] else versions[0])
        op = op if kind == "promote" else ("rollback", None)
        total = _steps_of(op, models, scratch, monkeypatch)
        assert total >= 8, total
        for at in range(1, total + 1):
            if op[0] == "rollback" and len(expected) < 2:
                refill = next(v for v in versions if v != expected[-1])
                registry.promote(refill, "so there is one to roll back", models_dir=models)
                expected.append(refill)
            if op[0] == "promote" and expected[-1] == op[1]:
                op = ("promote", next(v for v in versions if v != expected[-1]))
            before = registry.audit_log(models)
            seen = len(_journal_lines(models)[0])
            pointer = (models / config.PRODUCTION_POINTER).read_bytes()
            assert _run_in_child(op, models, at, rng.randrange(1 << 30)), (seed, op, at)
            kills["every step"] += 1
            windows[_window(models, seen, pointer)] += 1
            check_after_kill(op, seen, before)

    # 2. Random moments of a promote / rollback loop.
    for _ in range(20):
        if len(expected) < 2:
            target = next(v for v in versions if v != expected[-1])
            registry.promote(target, "refill", models_dir=models)
            expected.append(target)
        before = registry.audit_log(models)
        seen = len(_journal_lines(models)[0])
        delay = rng.uniform(0.002, 0.15)
        assert _loop_in_child(models, versions, rng.randrange(1 << 30), delay), seed
        kills["random moment"] += 1
        random_windows[_last_record(models, seen)] += 1
        check_after_kill(None, 0, before)

    with capsys.disabled():
        print(
            f"\nkills (seed {seed}): {dict(kills)}; where the step kills struck: "
            f"{dict(windows)}; the last record before a random kill: {dict(random_windows)}"
        )
    assert kills["every step"] + kills["random moment"] >= 20
    for window in (
        "before the intent",
        "writing the intent",
        "intent written, pointer not moved",
        "pointer moved, done not written",
        "writing done",
    ):
        assert windows[window] >= 1, (window, dict(windows))


def test_model_save_failing_midway_leaves_no_trace(models_copy, production_model, monkeypatch):
    before = registry_state(models_copy)
    real_write = model_storage.LocalFolder._write_file

    def disk_full(path: Path, data: bytes) -> None:
        if path.name == config.MODEL_ARTIFACT:
            real_write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        real_write(path, data)

    monkeypatch.setattr(model_storage.LocalFolder, "_write_file", staticmethod(disk_full))
    with pytest.raises(OSError, match="No space left"):
        registry.save_model(
            production_model.pipeline, card_of(production_model), production_model.reference()
        )
    assert registry_state(models_copy) == before
    hidden = [p.name for p in models_copy.iterdir() if p.name.startswith(".")]
    assert hidden in ([], [model_storage.LOCK_FILE])


# -- (b) call-list and scored files ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_lists(reference) -> dict[str, tuple[bytes, bytes, list[str]]]:
    """Two different call lists of week 40, each as (CSV bytes, xlsx bytes, ids in order)."""
    scored = scored_week(reference, 40)
    scored["rank"] = ranks_of(scored["probability"].to_numpy(float))
    out = {}
    for name, threshold in (("previous", 0.5), ("new", 0.2)):
        made = calllist.build_call_list(scored, threshold)
        notes = [f"threshold {threshold}"]
        out[name] = (
            calllist.export_csv(made),
            calllist.export_xlsx(made, notes),
            list(calllist.export_table(made)["customer_id"]),
        )
    assert len(out["new"][2]) > len(out["previous"][2]) > 0
    return out


def _read_ids(path: Path, kind: str) -> list[str]:
    header = calllist.PEOPLE_HEADERS["customer_id"]  # the people's files (CSV and Excel)
    if kind == "csv":
        return list(pd.read_csv(path, dtype=str, encoding="utf-8-sig")[header])
    return list(pd.read_excel(path, sheet_name="Call list", dtype=str)[header])


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_call_list_export_killed_midway_keeps_the_previous_file(
    kind, two_lists, tmp_path, children
):
    index = 0 if kind == "csv" else 1
    previous, new = two_lists["previous"][index], two_lists["new"][index]
    target = tmp_path / f"call_list.{kind}"
    exports.write_atomic(target, previous)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(new)

    child = children(child_argv(__file__, "write-export", target, payload))
    wait_until_paused(child)
    parts = list(tmp_path.glob(f".{target.name}.*.part"))
    assert [p.stat().st_size for p in parts] == [len(new) // 2], "half the new file is written"
    kill(child)

    assert target.read_bytes() == previous
    assert _read_ids(target, kind) == two_lists["previous"][2]
    exports.write_atomic(target, new)  # the next export replaces it whole
    assert _read_ids(target, kind) == two_lists["new"][2]


class _DiskFull:
    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data: bytes) -> None:
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device (injected)")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_call_list_export_failing_midway_keeps_the_previous_file(
    kind, two_lists, tmp_path, monkeypatch
):
    index = 0 if kind == "csv" else 1
    previous, new = two_lists["previous"][index], two_lists["new"][index]
    target = tmp_path / f"call_list.{kind}"
    exports.write_atomic(target, previous)
    real_fdopen = os.fdopen
    monkeypatch.setattr(exports.os, "fdopen", lambda fd, mode: _DiskFull(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        exports.write_atomic(target, new)
    monkeypatch.undo()
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name], "no partial file left"


def _failing_insert(rows: int, written: dict[str, int]):
    """A bulk insert of the prediction log that writes the first ``rows`` predictions (in the
    open transaction), then fails like a full disk; ``written`` counts the rows by table."""
    real_insert = database.bulk_insert

    def insert(conn, table, columns, values):
        kind = "predictions" if table is store.predictions else "customers"
        if kind == "predictions":
            values = [list(itertools.islice(v, rows)) for v in values]
        else:
            values = [list(v) for v in values]
        real_insert(conn, table, columns, values)
        written[kind] = written.get(kind, 0) + len(values[0])
        if kind == "predictions":
            raise OSError(errno.ENOSPC, "No space left on device (injected)")

    return insert


def test_scoring_failing_midway_keeps_the_previous_output_and_logs_nothing(
    production_model, reference, tmp_path, monkeypatch
):
    from termdeposit.data.dataset import make_cohort

    cohort = tmp_path / "week39.csv"
    make_cohort(reference, 39).to_csv(cohort, index=False)
    out = tmp_path / "scored.csv"
    earlier = b"customer_id,probability\nEARLIER,0.5\n"
    out.write_bytes(earlier)

    # The output file fails in the middle (third chunk of six).
    real_csv_bytes = fast_csv.csv_bytes
    chunks = {"n": 0}

    def fail_on_third_chunk(frame, header=True):
        chunks["n"] += 1
        if chunks["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real_csv_bytes(frame, header=header)

    monkeypatch.setattr(fast_csv, "csv_bytes", fail_on_third_chunk)
    with pytest.raises(OSError, match="No space left"):
        score_file(production_model, cohort, out, force_chunked=True, chunk_rows=500)
    assert chunks["n"] >= 3  # chunks are formatted two at a time: a later one may have begun
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv", "week39.csv"]
    monkeypatch.undo()

    # 'termdeposit score': the prediction log fails after its first batch of predictions.
    db = f"sqlite:///{tmp_path / 'log.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db)
    batches = {"predictions": 0}
    monkeypatch.setattr(database, "bulk_insert", _failing_insert(store.BATCH, batches))
    result = CliRunner().invoke(app, ["score", str(cohort), "--out", str(out)])
    assert isinstance(result.exception, OSError), result.output
    assert batches["predictions"] == store.BATCH
    assert out.read_bytes() == earlier, "the earlier output is kept"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no debris"
    assert store.open_store(db).cohorts().empty, "nothing is logged for a failed scoring"

    monkeypatch.undo()
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db)
    done = CliRunner().invoke(app, ["score", str(cohort), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert len(pd.read_csv(out)) == 2864 and len(store.open_store(db).cohorts()) == 1


# -- (c) a batch of the prediction log ---------------------------------------------------------


def db_snapshot(s: store.Store) -> dict[str, list[tuple]]:
    """Every row of every table of the store, sorted (to compare before and after)."""
    return {
        name: sorted(map(tuple, s.read(sa.select(table)).astype(str).itertuples(index=False)))
        for name, table in store.metadata.tables.items()
    }


def _count(s: store.Store, table: sa.Table) -> int:
    return int(s.read(sa.select(sa.func.count()).select_from(table)).iloc[0, 0])


def test_failure_inside_the_insert_loop_leaves_no_trace(db_url, reference, monkeypatch):  # noqa: F811
    s = store.open_store(db_url)
    s.log_scoring(
        scored_week(reference, 40), file_sha256=sha("earlier"), model_version="v1", threshold=0.5
    )
    before = db_snapshot(s)
    new = scored_week(reference, 39, seed=3)
    inserted = {"customers": 0, "predictions": 0}
    monkeypatch.setattr(database, "bulk_insert", _failing_insert(600, inserted))
    with pytest.raises(OSError, match="No space left"):
        s.log_scoring(new, file_sha256=sha("new"), model_version="v1", threshold=0.5)
    assert inserted == {"customers": len(new), "predictions": 600}, "failed mid-way"
    assert db_snapshot(s) == before

    monkeypatch.undo()
    logged = s.log_scoring(new, file_sha256=sha("new"), model_version="v1", threshold=0.5)
    assert logged.new_cohort and logged.rows == len(new)
    assert len(s.predictions(logged.scoring_id)) == len(new)


def _large_scored(reference: pd.DataFrame, weeks: range) -> pd.DataFrame:
    return pd.concat([scored_week(reference, w, seed=w) for w in weeks], ignore_index=True)


def test_process_killed_mid_batch_leaves_no_trace(db_url, reference, tmp_path, children):  # noqa: F811
    s = store.open_store(db_url)
    s.log_scoring(
        scored_week(reference, 40), file_sha256=sha("earlier"), model_version="v1", threshold=0.5
    )
    before = db_snapshot(s)
    large = _large_scored(reference, range(7))
    assert len(large) > 5 * store.BATCH
    payload = tmp_path / "large.parquet"
    large.to_parquet(payload)

    child = children(child_argv(__file__, "log-batch", db_url, payload, sha("large"), 3))
    wait_until_paused(child)
    # All customers and 3 batches of predictions are written in the open transaction: none
    # of it is visible to a reader (a plain one: the store's own transactions would queue
    # behind the child's write lock on SQLite).
    reader = sa.create_engine(db_url)
    with reader.connect() as conn:
        hashes = set(conn.execute(sa.select(store.cohorts.c.file_sha256)).scalars())
    reader.dispose()
    assert sha("large") not in hashes and sha("earlier") in hashes
    kill(child)

    assert db_snapshot(s) == before
    if s.dialect == "sqlite":
        assert s.read(sa.text("PRAGMA integrity_check")).iloc[0, 0] == "ok"
    logged = s.log_scoring(large, file_sha256=sha("large"), model_version="v1", threshold=0.5)
    assert logged.new_cohort and logged.rows == len(large)
    assert _count(s, store.predictions) == len(before["predictions"]) + len(large)
    assert _count(s, store.cohort_customers) == len(before["cohort_customers"]) + len(large)


if __name__ == "__main__":
    CHILDREN[sys.argv[1]](*sys.argv[2:])
