"""``crucible-train logs sync``: discovery, dispatch by sink kind, exit codes (no network).

Delivery itself is covered with the fake W&B server in
``tests/integration/test_wandb_fake_server.py`` and the sync logic in
``tests/unit/adapters/delivery/test_sync.py``; here the sink classes are stand-ins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crucible_train.entrypoints.cli.main import main
from crucible_train.errors import MissingSecretError

from extra_backends import branch, extra_backends


def _spool(run_dir: Path, kind: str, directory: str | None = None) -> Path:
    spool = run_dir / "spool" / (directory or kind)
    spool.mkdir(parents=True)
    (spool / "sink.json").write_text(json.dumps({"kind": kind}))
    return spool


class _Syncs:
    calls: ClassVar[list[dict[str, Any]]] = []
    left = 0

    @classmethod
    def sync_spool(cls, spool_dir: Path, **options: Any) -> int:
        cls.calls.append({"spool_dir": spool_dir, **options})
        return cls.left


class _NeedsKey:
    @classmethod
    def sync_spool(cls, spool_dir: Path, **options: Any) -> int:
        raise MissingSecretError("the sink needs an API key: export SOME_KEY")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    _Syncs.calls = []
    _Syncs.left = 0
    fake = branch("metrics", "fake", _Syncs)
    keyed = branch("metrics", "keyed", _NeedsKey)
    with extra_backends("metrics", fake=fake, keyed=keyed):
        yield


def test_a_missing_run_dir_is_a_configuration_error(tmp_path, capsys):
    assert main(["logs", "sync", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_run_dir_without_spools_has_nothing_to_sync(tmp_path, capsys):
    assert main(["logs", "sync", str(tmp_path)]) == 0
    assert "nothing to sync" in capsys.readouterr().out


def test_each_spool_goes_to_the_sink_registered_for_its_kind(tmp_path, capsys):
    spool = _spool(tmp_path / "run", "fake")
    assert main(["logs", "sync", str(tmp_path / "run"), "--timeout", "7", "--exit-code", "4"]) == 0
    (call,) = _Syncs.calls
    assert call["spool_dir"] == spool
    assert call["timeout"] == 7.0
    assert call["exit_code_if_unknown"] == 4
    assert call["environ"] is not None
    assert call["http"] is not None  # the configured (requests) client
    assert "fake: everything delivered" in capsys.readouterr().out


def test_rows_left_exit_3(tmp_path, capsys):
    _spool(tmp_path / "run", "fake")
    _Syncs.left = 5
    assert main(["logs", "sync", str(tmp_path / "run")]) == 3
    assert "5 rows still spooled" in capsys.readouterr().out


def test_unknown_kinds_and_missing_keys_exit_2_but_other_spools_are_synced(tmp_path, capsys):
    run = tmp_path / "run"
    _spool(run, "fake")
    _spool(run, "mystery")
    _spool(run, "keyed")
    assert main(["logs", "sync", str(run)]) == 2
    err = capsys.readouterr().err
    assert "error: mystery: no registered metrics sink 'mystery' can sync a spool" in err
    assert "error: keyed: the sink needs an API key: export SOME_KEY" in err
    assert len(_Syncs.calls) == 1


def test_a_broken_sink_file_is_reported(tmp_path, capsys):
    spool = tmp_path / "run" / "spool" / "x"
    spool.mkdir(parents=True)
    (spool / "sink.json").write_text("{not json")
    assert main(["logs", "sync", str(tmp_path / "run")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_a_noop_http_backend_falls_back_to_requests(tmp_path):
    _spool(tmp_path / "run", "fake")
    assert main(["logs", "sync", str(tmp_path / "run"), "http.backend=noop"]) == 0
    assert type(_Syncs.calls[0]["http"]).__name__ == "RequestsHttpClient"
