"""Caller-thread cost of logging 10 scalars: our W&B sink vs the official wandb SDK.

What a training loop pays per ``log_metrics`` call, measured call by call with
``time.perf_counter_ns``:

* ours: :class:`~crucible_train.adapters.wandb.WandbMetricsSink` with its default rate
  limit, pointed at a local fake W&B server that takes 500 ms to answer every request (a
  slow service must not slow the loop);
* theirs: ``wandb.log`` from the official package in offline mode (``WANDB_MODE=offline``,
  its files in a temporary directory), measured in the same process run. ``wandb`` is
  imported lazily; when it is not installed its fields are null.

Prints ONE JSON line: ``p50_us``, ``p99_us``, ``wandb_sdk_p50_us``, ``wandb_sdk_p99_us``,
``ratio_p99_vs_sdk`` (ours / SDK), ``calls``, versions and the setup. Run from the
repository root: ``python benchmarks/logging_overhead.py``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CALLS = 5_000
WARMUP = 200  # calls made before measuring (first-call costs: imports, caches)
SCALARS = 10
SERVER_DELAY_S = 0.5
API_KEY = "bench0123456789abcdef0123456789abcdef0123"


class _SlowWandb(BaseHTTPRequestHandler):
    """Just enough of W&B (Viewer, UpsertBucket, file_stream), 500 ms per answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        time.sleep(SERVER_DELAY_S)
        if self.path == "/graphql" and body.get("operationName") == "Viewer":
            answer: Any = {"data": {"viewer": {"id": "u", "entity": "bench"}}}
        elif self.path == "/graphql":
            variables = body.get("variables") or {}
            answer = {
                "data": {
                    "upsertBucket": {
                        "bucket": {
                            "id": "r",
                            "name": variables.get("name"),
                            "displayName": "bench",
                            "historyLineCount": 0,
                            "project": {"name": "bench", "entity": {"name": "bench"}},
                        },
                        "inserted": True,
                    }
                }
            }
        else:
            answer = {"exitcode": None, "limits": {}}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _rows(count: int) -> list[dict[str, float]]:
    # Built before timing: the benchmark measures logging, not building dicts.
    return [
        {f"metric_{k}": (i * 0.001 + k) / (k + 1) for k in range(SCALARS)} for i in range(count)
    ]


def _measure(log: Any, rows: list[dict[str, float]]) -> list[float]:
    durations: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()
    for row in rows:
        started = clock()
        log(row)
        durations.append((clock() - started) / 1000.0)
    return durations


def _percentiles(durations: list[float]) -> dict[str, float]:
    ordered = sorted(durations)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def _ours(tmp: str) -> tuple[dict[str, float], int]:
    from crucible_train.adapters.requests_http import RequestsHttpClient
    from crucible_train.adapters.wandb import WandbMetricsSink

    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowWandb)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    http = RequestsHttpClient()
    try:
        sink = WandbMetricsSink(
            http=http,
            run_dir=os.path.join(tmp, "ours"),
            api_key=API_KEY,
            project="bench",
            entity="bench",
            base_url=f"http://127.0.0.1:{server.server_address[1]}",
            close_timeout_s=60.0,
        )
        warm, rows = _rows(WARMUP), _rows(CALLS)
        _measure(lambda row: sink.log_metrics(row), warm)
        durations = _measure(lambda row: sink.log_metrics(row), rows)
        sink.close()
        left = sink.sender.pending_count
    finally:
        http.close()
        server.shutdown()
        server.server_close()
        thread.join()
    return _percentiles(durations), left


def _sdk(tmp: str) -> tuple[dict[str, float] | None, str]:
    os.environ.update(
        WANDB_MODE="offline",
        WANDB_DIR=os.path.join(tmp, "sdk"),
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
    )
    os.makedirs(os.environ["WANDB_DIR"], exist_ok=True)
    try:
        import wandb
    except ImportError:
        return None, "not installed"
    run = wandb.init(project="bench", dir=os.environ["WANDB_DIR"], mode="offline")
    try:
        warm, rows = _rows(WARMUP), _rows(CALLS)
        _measure(lambda row: run.log(row), warm)
        durations = _measure(lambda row: run.log(row), rows)
    finally:
        run.finish()
    return _percentiles(durations), str(wandb.__version__)


def main() -> None:
    """Run both measurements and print the JSON line."""
    from crucible_train import __version__

    with tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp:
        ours, left = _ours(tmp)
        sdk, sdk_version = _sdk(tmp)
    result: dict[str, Any] = {
        "p50_us": ours["p50"],
        "p99_us": ours["p99"],
        "wandb_sdk_p50_us": sdk["p50"] if sdk else None,
        "wandb_sdk_p99_us": sdk["p99"] if sdk else None,
        "ratio_p99_vs_sdk": round(ours["p99"] / sdk["p99"], 3) if sdk else None,
        "calls": CALLS,
        "scalars_per_call": SCALARS,
        "warmup_calls": WARMUP,
        "server_delay_s": SERVER_DELAY_S,
        "ours": ours,
        "wandb_sdk_detail": sdk,
        "rows_left_after_close": left,
        "versions": {
            "crucible_train": __version__,
            "wandb": sdk_version if sdk else None,
            "python": platform.python_version(),
        },
    }
    if sdk is None:
        result["wandb_sdk"] = sdk_version
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
