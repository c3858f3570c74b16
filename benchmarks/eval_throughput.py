"""BatchRunner throughput against a 50 ms LLM, and memory flatness over a long stream.

(a) ``samples_per_s`` / ``fraction_of_ideal``: :func:`stream_evaluate` at concurrency 16
    over 640+ samples whose outputs come from an OpenAI-compatible LLM client talking to a
    local fake server (``ThreadingHTTPServer`` on 127.0.0.1 that answers
    ``POST /v1/chat/completions`` after sleeping 50 ms). Ideal = 16 / 0.05 = 320 samples/s.
    The client is the ``openai_compat`` adapter registered in
    ``crucible_train.container.BACKENDS["llm"]`` (over the ``requests`` HTTP adapter) when
    it is registered; otherwise a minimal requests-based client defined here (reported in
    ``llm_client``).
(b) ``rss_growth_mb``: peak RSS (``resource.getrusage`` maxrss) after streaming 1,000,000
    lazily generated samples through ``exact_match`` + :func:`aggregate_metrics`, minus the
    peak after the first 10,000. Flat memory means ~0.

Prints ONE JSON line. Run from the repository root: ``python benchmarks/eval_throughput.py``.
"""

from __future__ import annotations

import json
import platform
import resource
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from crucible_train.core.evaluation import (
    EvalConfig,
    EvalSample,
    aggregate_metrics,
    stream_evaluate,
)

LATENCY_S = 0.05
CONCURRENCY = 16
SAMPLES = 960
WARMUP = 32
LONG_STREAM = 1_000_000
SHORT_STREAM = 10_000


class _FakeOpenAI(BaseHTTPRequestHandler):
    """Answers every chat completion with the last user message, after 50 ms."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real server
    # Buffer the answer so headers and body leave in one segment, and disable Nagle as
    # production servers (uvicorn, vLLM) do; otherwise Nagle + delayed ACK add ~40 ms to
    # every request and the benchmark would measure the fake server, not the runner.
    wbufsize = -1

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(LATENCY_S)
        text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        answer = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "text": text,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MinimalClient:
    """Fallback used only when the openai_compat adapter is not registered."""

    def __init__(self, base_url: str) -> None:
        import requests

        self._url = base_url + "/chat/completions"
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY)
        self._session.mount("http://", adapter)

    def chat(self, messages: list[dict[str, str]]) -> str:
        answer = self._session.post(self._url, json={"model": "fake", "messages": messages})
        answer.raise_for_status()
        return str(answer.json()["choices"][0]["message"]["content"])


def _llm_generate(base_url: str) -> tuple[Any, str]:
    try:
        from crucible_train.container import BACKENDS

        backend = BACKENDS["llm"].get("openai_compat")
        http_backend = BACKENDS["http"].get("requests")
    except Exception:
        backend = http_backend = None
    if backend is not None and http_backend is not None:
        http = http_backend.adapter(pool_size=CONCURRENCY)
        client = backend.adapter(http=http, base_url=base_url, model="fake", max_retries=0)

        def generate(sample: EvalSample) -> str:
            messages = [{"role": "user", "content": sample.input or ""}]
            return str(client.chat(messages).text)

        return generate, "crucible_train.adapters.openai_compat (BACKENDS['llm'])"
    fallback = _MinimalClient(base_url)

    def generate_fallback(sample: EvalSample) -> str:
        return fallback.chat([{"role": "user", "content": sample.input or ""}])

    return generate_fallback, "benchmark-local requests client (openai_compat not registered)"


def _throughput() -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        generate, client_name = _llm_generate(f"http://127.0.0.1:{server.server_port}/v1")
        config = EvalConfig(scorers=("exact_match",), generate=generate)

        def samples(n: int) -> Iterator[EvalSample]:
            for i in range(n):
                yield EvalSample(id=str(i), input=f"answer {i}", target=f"answer {i}")

        # Warm up connections and imports so they do not count against throughput.
        list(stream_evaluate(samples(WARMUP), config, concurrency=CONCURRENCY))
        start = time.perf_counter()
        metrics = aggregate_metrics(
            stream_evaluate(samples(SAMPLES), config, concurrency=CONCURRENCY)
        )
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
        server.server_close()
    rate = SAMPLES / elapsed
    ideal = CONCURRENCY / LATENCY_S
    return {
        "samples_per_s": round(rate, 1),
        "fraction_of_ideal": round(rate / ideal, 3),
        "ideal_samples_per_s": ideal,
        "throughput_samples": SAMPLES,
        "throughput_errors": metrics["errors"],
        "throughput_accuracy": metrics["accuracy"],
        "llm_client": client_name,
    }


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _memory() -> dict[str, Any]:
    config = EvalConfig(scorers=("exact_match",))
    rss: dict[int, float] = {}

    def samples() -> Iterator[EvalSample]:
        for i in range(LONG_STREAM):
            if i in (SHORT_STREAM, LONG_STREAM - 1):
                rss[i] = _peak_rss_mb()
            text = f"sample {i}"
            yield EvalSample(id=str(i), input=text, output=text, target=text)

    start = time.perf_counter()
    metrics = aggregate_metrics(stream_evaluate(samples(), config))
    elapsed = time.perf_counter() - start
    assert metrics["correct"] == metrics["total"] == LONG_STREAM
    return {
        "rss_growth_mb": round(rss[LONG_STREAM - 1] - rss[SHORT_STREAM], 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "stream_samples": LONG_STREAM,
        "stream_samples_per_s": round(LONG_STREAM / elapsed),
    }


def _semantic() -> dict[str, Any]:
    """(c) semantic similarity batched vs one embedding call per text (needs `embeddings`)."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from semantic_similarity import measure
    except ImportError as exc:  # the `embeddings` extra is optional
        return {"semantic_speedup": None, "semantic": f"not measured: {exc}"}
    result = measure()
    return {
        "semantic_speedup": result["speedup"],
        "semantic_batched_samples_per_s": result["batched_samples_per_s"],
        "semantic_per_text_samples_per_s": result["per_text_samples_per_s"],
        "semantic_pairs": result["pairs"],
        "semantic_chunk_pairs": result["chunk_pairs"],
    }


def main() -> None:
    memory = _memory()  # first, so the HTTP part's allocations do not mask growth
    line = {
        "benchmark": "eval_throughput",
        **_throughput(),
        **memory,
        **_semantic(),  # last: loading torch and the model would mask memory growth
        "concurrency": CONCURRENCY,
        "latency_ms": LATENCY_S * 1000,
        "chunk_size": 25,
        "goals": {
            "fraction_of_ideal": ">= 0.8",
            "rss_growth_mb": "<= 50",
            "semantic_speedup": ">= 5",
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
