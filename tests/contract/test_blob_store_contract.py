"""BlobStore contract: round trips, overwrite, listing, deletes, key safety, atomicity, pickle."""

from __future__ import annotations

import pickle
import threading

import pytest

from crucible_train.errors import BlobNotFoundError, BlobPathError, BlobStoreError

PORT = "blob_store"

BAD_KEYS = [
    "",
    "/abs/key",
    "../escape",
    "a/../../escape",
    "a/..",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a\\b",
    "..\\escape",
    "nul\x00byte",
    "a/b.crucible-tmp",
]


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_put_get_round_trip(working_adapter):
    working_adapter.put("run/ckpt-000100/weights.bin", b"\x00\x01binary\xff")
    assert working_adapter.get("run/ckpt-000100/weights.bin") == b"\x00\x01binary\xff"


@pytest.mark.parametrize("data", [b"", b"x", bytearray(b"mutable"), memoryview(b"view")])
def test_accepts_bytes_like_data_and_returns_bytes(working_adapter, data):
    working_adapter.put("blob", data)
    got = working_adapter.get("blob")
    assert type(got) is bytes
    assert got == bytes(data)


def test_stored_bytes_do_not_follow_later_mutation(working_adapter):
    data = bytearray(b"before")
    working_adapter.put("k", data)
    data[:] = b"after!"
    assert working_adapter.get("k") == b"before"


def test_non_bytes_data_is_refused(working_adapter):
    with pytest.raises(BlobStoreError):
        working_adapter.put("k", "text is not bytes")
    assert not working_adapter.exists("k")


def test_unusual_but_safe_keys_work(working_adapter):
    keys = ["dir/ünïcode name.txt", "a b/c:d", "..hidden", "x/...", "deep/" * 6 + "leaf"]
    for index, key in enumerate(keys):
        working_adapter.put(key, str(index).encode())
    for index, key in enumerate(keys):
        assert working_adapter.get(key) == str(index).encode()
    assert working_adapter.list() == sorted(keys)


def test_overwrite_replaces(working_adapter):
    working_adapter.put("k", b"first version, longer")
    working_adapter.put("k", b"second")
    assert working_adapter.get("k") == b"second"
    assert working_adapter.list() == ["k"]


def test_put_is_idempotent(working_adapter):
    working_adapter.put("k", b"same")
    working_adapter.put("k", b"same")
    assert working_adapter.get("k") == b"same"


def test_exists(working_adapter):
    assert not working_adapter.exists("a/b")
    working_adapter.put("a/b", b"1")
    assert working_adapter.exists("a/b")
    assert not working_adapter.exists("a")


def test_get_missing_raises_not_found_naming_the_key(working_adapter):
    with pytest.raises(BlobNotFoundError, match="missing/key") as info:
        working_adapter.get("missing/key")
    assert isinstance(info.value, KeyError)


def test_list_is_sorted_and_filters_by_prefix(working_adapter):
    for key in ["run/b", "run/a/2", "run/a/1", "other", "run-2/x", "ru"]:
        working_adapter.put(key, b".")
    assert working_adapter.list() == ["other", "ru", "run-2/x", "run/a/1", "run/a/2", "run/b"]
    assert working_adapter.list("run/") == ["run/a/1", "run/a/2", "run/b"]
    assert working_adapter.list("run") == ["run-2/x", "run/a/1", "run/a/2", "run/b"]
    assert working_adapter.list("run/a/") == ["run/a/1", "run/a/2"]
    assert working_adapter.list("nothing/") == []


def test_list_of_an_empty_store_is_empty(working_adapter):
    assert working_adapter.list() == []
    assert working_adapter.list("x/") == []


def test_delete_removes_and_missing_is_a_no_op(working_adapter):
    working_adapter.put("a/1", b"1")
    working_adapter.put("a/2", b"2")
    working_adapter.delete("a/1")
    working_adapter.delete("a/1")
    working_adapter.delete("never/existed")
    assert working_adapter.list() == ["a/2"]
    with pytest.raises(BlobNotFoundError):
        working_adapter.get("a/1")


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("operation", ["put", "get", "exists", "delete"])
def test_unsafe_keys_are_refused(working_adapter, key, operation):
    call = getattr(working_adapter, operation)
    args = (key, b"data") if operation == "put" else (key,)
    with pytest.raises(BlobPathError) as info:
        call(*args)
    assert isinstance(info.value, ValueError)
    assert working_adapter.list() == []


@pytest.mark.parametrize("key", [None, 3, b"bytes-key"])
def test_non_string_keys_are_refused(working_adapter, key):
    with pytest.raises(BlobPathError):
        working_adapter.put(key, b"data")


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../", "a//", "a\\"])
def test_unsafe_prefixes_are_refused(working_adapter, prefix):
    with pytest.raises(BlobPathError):
        working_adapter.list(prefix)


def test_pickle_round_trip_keeps_content(working_adapter, port_protocol):
    working_adapter.put("manifest.json", b"{}")
    clone = pickle.loads(pickle.dumps(working_adapter))
    assert isinstance(clone, port_protocol)
    assert clone.get("manifest.json") == b"{}"
    clone.put("after", b"1")
    assert clone.get("after") == b"1"


def test_concurrent_writers_and_readers_see_whole_blobs_only(working_adapter):
    # Two large payloads overwrite one key while readers poll it: every read must be one
    # complete payload and the listing must never show a temporary name.
    payloads = [bytes([1]) * 300_000, bytes([2]) * 200_000]
    working_adapter.put("ckpt/state", payloads[0])
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(index: int) -> None:
        try:
            for _ in range(15):
                working_adapter.put("ckpt/state", payloads[index])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                assert working_adapter.get("ckpt/state") in payloads
                assert working_adapter.list() == ["ckpt/state"]
                assert working_adapter.list("ckpt/") == ["ckpt/state"]
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(i % 2,)) for i in range(4)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert working_adapter.get("ckpt/state") in payloads


def test_concurrent_puts_of_distinct_keys_all_land(working_adapter):
    def put_range(start: int) -> None:
        for index in range(start, start + 25):
            working_adapter.put(f"shard/{index // 10}/{index:03d}", str(index).encode())

    threads = [threading.Thread(target=put_range, args=(25 * i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = working_adapter.list("shard/")
    assert len(keys) == 100
    assert all(working_adapter.get(key) == str(int(key[-3:])).encode() for key in keys)
