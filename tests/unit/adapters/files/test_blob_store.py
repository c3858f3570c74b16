"""Unit tests for FilesBlobStore: on-disk layout, atomic writes, fsync, symlink escapes, keys."""

from __future__ import annotations

import os
import pathlib
import pickle
import string
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_train.adapters._blob_keys import RESERVED_SUFFIX
from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.noop import NoopBlobStore
from crucible_train.errors import (
    BlobNotFoundError,
    BlobPathError,
    BlobStoreError,
    ConfigurationError,
)


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: pathlib.Path) -> FilesBlobStore:
    return FilesBlobStore(root=str(root))


def files_under(path: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["relative/dir", "", "./x", "~/blobs"])
def test_relative_or_empty_root_is_refused(root):
    with pytest.raises(ConfigurationError, match="absolute"):
        FilesBlobStore(root=root)


def test_root_is_created_lazily(root, store):
    assert not root.exists()
    assert store.list() == []
    assert not store.exists("a")
    with pytest.raises(BlobNotFoundError):
        store.get("a")
    store.delete("a")
    assert not root.exists()
    store.put("a", b"1")
    assert root.is_dir()


def test_pickles_as_settings_only(root, store):
    store.put("k", b"v")
    assert vars(store) == {"_root": str(root)}
    clone = pickle.loads(pickle.dumps(store))
    assert repr(clone) == f"FilesBlobStore(root={str(root)!r})"
    clone.put("from-clone", b"shared disk")
    assert store.get("from-clone") == b"shared disk"


# --- layout and atomic writes -------------------------------------------------------------


def test_keys_map_to_files_under_root(root, store):
    store.put("run/ckpt-000100/weights.bin", b"w")
    store.put("top", b"t")
    assert files_under(root) == ["run/ckpt-000100/weights.bin", "top"]
    assert (root / "run" / "ckpt-000100" / "weights.bin").read_bytes() == b"w"


def test_put_leaves_no_temp_files(root, store):
    for round_ in range(3):
        store.put("a/b", bytes([round_]) * 1000)
    assert files_under(root) == ["a/b"]


def test_put_writes_a_temp_file_in_the_same_directory_and_renames_it(root, store, monkeypatch):
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.put("dir/blob", b"data")
    [(src, dst)] = renames
    assert os.path.dirname(src) == os.path.dirname(dst) == str(root / "dir")
    assert src.endswith(RESERVED_SUFFIX)
    assert dst == str(root / "dir" / "blob")


def test_put_fsyncs_the_file_and_its_directory(root, store, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to map file descriptors to paths")
    monkeypatch.setattr(os, "fsync", spy)
    store.put("dir/blob", b"data")
    # The temp file's data, then the directory holding the rename.
    assert any(path.endswith(RESERVED_SUFFIX) for path in synced)
    assert synced[-1] == str(root / "dir")


def test_failed_write_keeps_the_old_blob_and_cleans_up(root, store, monkeypatch):
    store.put("k", b"old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(BlobStoreError, match="No space left on device"):
        store.put("k", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert files_under(root) == ["k"]


def test_list_ignores_temp_files_of_in_flight_writes(root, store):
    store.put("a/real", b"1")
    (root / "a" / f".real.0123abcd{RESERVED_SUFFIX}").write_bytes(b"half")
    assert store.list() == ["a/real"]
    assert store.list("a/") == ["a/real"]


# --- conflicts between blobs and directories ----------------------------------------------


def test_a_blob_cannot_also_be_a_directory(store):
    store.put("a", b"file")
    with pytest.raises(BlobStoreError, match="'a/b'"):
        store.put("a/b", b"nested")
    assert store.get("a") == b"file"


def test_directory_keys_are_not_blobs(store):
    store.put("dir/child", b"1")
    assert not store.exists("dir")
    with pytest.raises(BlobNotFoundError):
        store.get("dir")
    store.delete("dir")
    assert store.get("dir/child") == b"1"


def test_getting_below_a_file_is_not_found(store):
    store.put("file", b"1")
    with pytest.raises(BlobNotFoundError):
        store.get("file/below")
    store.delete("file/below")


# --- symlink escapes ----------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_bytes(b"do not read")
    return path


def test_symlinked_directory_escaping_root_is_refused(root, store, outside):
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    for call in (
        lambda: store.put("link/new", b"x"),
        lambda: store.get("link/secret"),
        lambda: store.exists("link/secret"),
        lambda: store.delete("link/secret"),
        lambda: store.list("link/"),
    ):
        with pytest.raises(BlobPathError, match="outside the store root"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"do not read"


def test_symlinked_file_escaping_root_is_refused_and_not_listed(root, store, outside):
    store.put("real", b"1")
    (root / "leak").symlink_to(outside / "secret")
    assert store.list() == ["real"]
    with pytest.raises(BlobPathError):
        store.get("leak")


def test_symlinked_root_itself_is_fine(tmp_path):
    target = tmp_path / "real-root"
    target.mkdir()
    link = tmp_path / "root-link"
    link.symlink_to(target, target_is_directory=True)
    store = FilesBlobStore(root=str(link))
    store.put("a/b", b"1")
    assert store.list() == ["a/b"]
    assert (target / "a" / "b").read_bytes() == b"1"


def test_symlinks_inside_root_are_followed(root, store):
    store.put("real/blob", b"1")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert store.get("alias/blob") == b"1"


# --- listing ------------------------------------------------------------------------------


def test_list_with_a_deep_prefix_only_walks_that_directory(root, store, monkeypatch):
    for key in ["a/x/1", "a/x/2", "a/y/1", "b/1"]:
        store.put(key, b".")
    walked: list[str] = []
    real_walk = os.walk

    def spy(top, *args, **kwargs):
        walked.append(os.fspath(top))
        return real_walk(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", spy)
    assert store.list("a/x/") == ["a/x/1", "a/x/2"]
    assert store.list("a/x") == ["a/x/1", "a/x/2"]
    assert walked == [str(root / "a" / "x"), str(root / "a")]


# --- the shared key rules, property-tested ----------------------------------------------

_SEGMENT_CHARS = string.ascii_letters + string.digits + " .-_:éü\\\x00~"
keys = st.lists(
    st.text(alphabet=_SEGMENT_CHARS, min_size=0, max_size=12), min_size=1, max_size=4
).map("/".join) | st.text(alphabet=_SEGMENT_CHARS + "/", max_size=30)


@settings(max_examples=150, deadline=None)
@given(key=keys)
def test_both_stores_agree_on_keys_and_never_write_outside_root(key):
    memory = NoopBlobStore()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        files = FilesBlobStore(root=root)
        try:
            memory.put(key, b"payload")
        except BlobPathError:
            with pytest.raises(BlobPathError):
                files.put(key, b"payload")
            return
        files.put(key, b"payload")
        assert files.get(key) == memory.get(key) == b"payload"
        assert files.list() == memory.list() == [key]
        written = [
            os.path.join(directory, name)
            for directory, _dirs, names in os.walk(tmp)
            for name in names
        ]
        assert len(written) == 1
        assert os.path.realpath(written[0]).startswith(os.path.realpath(root) + os.sep)
