"""FilesResultsStore: the 0.2 results file byte for byte, fsync per chunk, torn-tail repair."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crucible_train.adapters.files.results_store import FilesResultsStore
from crucible_train.container import results_store
from crucible_train.errors import ConfigurationError, InvalidDataError

HEADER = b'{"__header__": {"run_fingerprint": "fp", "version": 1}}\n'


def test_the_file_is_a_header_then_one_json_line_per_record_as_in_0_2(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "r.jsonl"
    store = FilesResultsStore(path)
    store.open_run("fp")
    assert path.read_bytes() == HEADER
    store.append([{"id": "a", "output": "é", "scores": {"m": 1.0}}, {"id": "b", "error": None}])
    assert (
        path.read_bytes()
        == HEADER
        + (
            '{"id": "a", "output": "é", "scores": {"m": 1.0}}\n{"id": "b", "error": null}\n'
        ).encode()
    )


def test_a_0_2_results_file_resumes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        HEADER + b'{"id": "s0", "input": null, "output": "x", "target": "x", '
        b'"scores": {"exact_match": 1.0}, "error": null}\n'
    )
    store = FilesResultsStore(path)
    store.open_run("fp", resume=True)
    assert [record["id"] for record in store.records()] == ["s0"]


def test_each_chunk_is_one_write_then_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesResultsStore(tmp_path / "r.jsonl")
    store.open_run("fp")
    calls: list[str] = []
    real_write, real_fsync = os.write, os.fsync

    def write(fd: int, data: bytes) -> int:
        calls.append("write")
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    store.append([{"id": str(i)} for i in range(25)])
    assert calls == ["write", "fsync"]


def test_readers_skip_a_torn_tail_and_resume_cuts_it_off(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store = FilesResultsStore(path)
    store.open_run("fp")
    store.append([{"id": "a"}, {"id": "b"}])
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"id": "c", "inp')  # a crash in the middle of a write
    assert [r["id"] for r in store.records()] == ["a", "b"]
    assert path.read_bytes().endswith(b'"inp')  # reading changed nothing
    later = FilesResultsStore(path)
    later.open_run("fp", resume=True)
    assert path.read_bytes() == whole
    later.append([{"id": "c"}])
    assert [r["id"] for r in later.records()] == ["a", "b", "c"]


def test_a_torn_tail_longer_than_a_read_block_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store = FilesResultsStore(path)
    store.open_run("fp")
    store.append([{"id": "a"}])
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"id": "' + b"x" * 200_000)
    FilesResultsStore(path).open_run("fp", resume=True)
    assert path.read_bytes() == whole


def test_a_torn_header_alone_starts_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"__header__": {"run_fing')
    FilesResultsStore(path).open_run("other", resume=True)
    assert path.read_bytes() == HEADER.replace(b'"fp"', b'"other"')


def test_an_empty_file_is_started_without_resume(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")
    FilesResultsStore(path).open_run("fp")
    assert path.read_bytes() == HEADER


def test_resume_refuses_a_file_without_our_header(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"x": 1}\n')
    with pytest.raises(ConfigurationError) as caught:
        FilesResultsStore(path).open_run("fp", resume=True)
    assert str(caught.value) == (
        f"results file {path} has no crucible-train header; choose a new --out"
    )
    assert path.read_bytes() == b'{"x": 1}\n'


def test_resume_refuses_a_malformed_header(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"__header__": [1]}\n')
    with pytest.raises(ConfigurationError, match=r"r\.jsonl has a malformed header$"):
        FilesResultsStore(path).open_run("fp", resume=True)


def test_the_messages_name_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(HEADER)
    with pytest.raises(ConfigurationError) as caught:
        FilesResultsStore(path).open_run("fp")
    assert str(caught.value) == (
        f"results file {path} already exists; pass --resume to continue it, or choose a new --out"
    )
    with pytest.raises(ConfigurationError) as caught:
        FilesResultsStore(path).open_run("zz", resume=True)
    assert str(caught.value) == (
        f"results file {path} was written by a different run (fingerprint fp, "
        "expected zz); use a new --out or drop --resume"
    )


def test_a_line_that_is_not_a_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(HEADER + b'{"id": "a"}\nnot json\n')
    with pytest.raises(InvalidDataError, match=r"r\.jsonl:3: not JSON"):
        list(FilesResultsStore(path).records())
    path.write_bytes(HEADER + b"[1, 2]\n")
    with pytest.raises(InvalidDataError, match=r"r\.jsonl:2: expected a JSON object, got list"):
        list(FilesResultsStore(path).records())
    path.write_bytes(HEADER + b'{"id": "\xff"}\n')
    with pytest.raises(InvalidDataError, match=r"r\.jsonl:2: not UTF-8"):
        list(FilesResultsStore(path).records())


def test_a_bad_record_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store = FilesResultsStore(path)
    store.open_run("fp")
    store.append([{"id": "a"}])
    before = path.read_bytes()
    with pytest.raises(InvalidDataError, match="result record 1 of the chunk is not JSON"):
        store.append([{"id": "b"}, {"id": "c", "score": float("inf")}])
    assert path.read_bytes() == before


def test_the_container_builds_this_store_for_eval_out(tmp_path: Path) -> None:
    built = results_store(tmp_path / "r.jsonl")
    assert isinstance(built, FilesResultsStore)
    assert built.location == str(tmp_path / "r.jsonl")
    assert repr(built) == f"FilesResultsStore({str(tmp_path / 'r.jsonl')!r})"
