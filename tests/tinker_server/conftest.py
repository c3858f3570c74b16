"""A self-hosted Tinker-compatible server (skyrl-tx, JAX on CPU) for the ``tinker_server`` tests.

The server runs once per test session on a free 127.0.0.1 port, in its own process
group, serving a tiny random Qwen3 built by ``scripts/tinker-server/make_tiny_qwen3.py``.
Its Python is this test process's (``sys.executable``) unless ``TINKER_SERVER_PYTHON``
names another; ``scripts/tinker-server/install`` builds an environment holding both the
server and the SDK it speaks. When the session ends the whole process group (API server
and engine) is killed and the teardown fails if anything of it survives.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPTS = REPO / "scripts" / "tinker-server"
READY_LINE = "Starting background engine..."
START_TIMEOUT_S = float(os.environ.get("TINKER_SERVER_START_TIMEOUT", "300"))
# skyrl-tx 0.3.0 has no /api/v1/client/config, which tinker >= 0.20 requires (it retries
# forever); 0.16.1 is the newest SDK it speaks. See scripts/tinker-server/README.md.
NEWEST_SDK_FOR_SKYRL_TX = (0, 16, 1)
API_KEY = "tml-local-test-key"  # the SDK insists on the prefix; skyrl-tx never checks it
BACKEND_CONFIG = {
    # Every training client (and sampler) the session creates takes an adapter slot; slot
    # 0 is the base model.
    "max_lora_adapters": 32,
    "max_lora_rank": 8,
    "train_micro_batch_size": 8,
    "sample_max_num_sequences": 16,
}
LORA_RANK = 8


@attrs.frozen
class TinkerServer:
    """A running server: its URL, the model it serves and its log."""

    base_url: str
    model_dir: Path
    log: Path
    pid: int

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie leader of another user; not ours
        return False
    return True


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group (the API server stops its engine), then SIGKILL what is left."""
    pgid = process.pid  # start_new_session: the server leads its own group
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=15)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=15)
    assert not _group_alive(pgid), f"processes of the server group {pgid} survived SIGKILL"


def _server_python() -> str:
    return os.environ.get("TINKER_SERVER_PYTHON") or sys.executable


def _check_sdk() -> None:
    try:
        version = importlib.metadata.version("tinker")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the tinker SDK is not installed; run scripts/test-tinker-server")
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts > NEWEST_SDK_FOR_SKYRL_TX:
        pytest.fail(
            f"tinker {version} cannot talk to skyrl-tx 0.3.0 (it needs /api/v1/client/config "
            "and retries forever without it); run these tests in the environment "
            "scripts/tinker-server/install builds (tinker==0.16.1): scripts/test-tinker-server"
        )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3 (model + ChatML tokenizer) the server serves."""
    _check_sdk()  # fail before the slow part when this environment cannot work
    out = tmp_path_factory.mktemp("tiny-qwen3")
    result = subprocess.run(
        [_server_python(), str(SERVER_SCRIPTS / "make_tiny_qwen3.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"make_tiny_qwen3.py failed:\n{result.stderr}"
    assert (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    return out


@pytest.fixture(scope="session")
def tinker_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TinkerServer]:
    """Start skyrl-tx on a free 127.0.0.1 port; yield once its engine is running."""
    run_dir = tmp_path_factory.mktemp("tinker-server")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = run_dir / "server.log"
    python = _server_python()
    env = {
        **os.environ,
        "PATH": f"{SERVER_SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}",
        "TX_PYTHON": python,
        "JAX_PLATFORMS": "cpu",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "COLUMNS": "250",  # the engine logs through rich; keep lines whole
    }
    command = [
        python,
        "-m",
        "tx.tinker.api",
        "--base-model",
        str(tiny_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        f"sqlite:///{run_dir / 'tinker.db'}",
        "--checkpoints-base",
        str(run_dir / "checkpoints"),
        "--backend-config",
        json.dumps(BACKEND_CONFIG),
    ]
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = TinkerServer(base_url=base_url, model_dir=tiny_model_dir, log=log, pid=process.pid)
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the Tinker server ({python} -m tx.tinker.api) exited with "
                    f"{process.returncode} before it was ready; {log}:\n{server.log_tail()}"
                )
            if READY_LINE in log.read_text(errors="replace") and _healthy(base_url):
                break
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(
                    f"the Tinker server was not ready after {START_TIMEOUT_S:.0f} s "
                    f"(no /api/v1/healthz answer or no {READY_LINE!r} line); "
                    f"{log}:\n{server.log_tail()}"
                )
            time.sleep(0.25)
        sys.stderr.write(
            f"\nTinker server {base_url} ready after {time.monotonic() - started:.1f} s\n"
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TINKER_API_KEY", API_KEY)
            patch.setenv("TINKER_BASE_URL", base_url)
            patch.setenv("TINKER_TELEMETRY", "0")
            patch.setenv("HF_HUB_OFFLINE", "1")
            patch.setenv("TRANSFORMERS_OFFLINE", "1")
            yield server
    finally:
        _stop_group(process)


@pytest.fixture(scope="session")
def tinker_settings(tinker_server: TinkerServer) -> dict[str, object]:
    """Keyword settings of the Tinker adapters for the session's server."""
    return {
        "base_model": str(tinker_server.model_dir),
        "base_url": tinker_server.base_url,
        "api_key": API_KEY,
        "lora_rank": LORA_RANK,
        "seed": 0,
        # A failing call must fail the test, not wait out the SDK's retries of a 5xx.
        "future_timeout_s": 60.0,
        # skyrl-tx 0.3.0 runs queued optim_steps ahead of queued forward_backwards.
        "pipeline": False,
    }


@pytest.fixture
def training_clients(tinker_settings: dict[str, object]) -> Iterator[Any]:
    """``make(**overrides)`` builds a ``TinkerTrainingClient``; all are closed afterwards."""
    from crucible_train.adapters.tinker.training_client import TinkerTrainingClient

    made: list[Any] = []

    def make(**overrides: object) -> Any:
        made.append(TinkerTrainingClient(**{**tinker_settings, **overrides}))
        return made[-1]

    yield make
    for client in made:
        close = getattr(client, "close", None)
        if callable(close):
            close()


@pytest.fixture(scope="session")
def renderer(tiny_model_dir: Path) -> Any:
    """``qwen3_instruct`` over the tiny model's tokenizer (our Hugging Face adapter)."""
    from crucible_train.adapters.hf_tokenizers import HuggingFaceTokenizer
    from crucible_train.core.renderers import get_renderer

    return get_renderer("qwen3_instruct", HuggingFaceTokenizer(path=str(tiny_model_dir)))
