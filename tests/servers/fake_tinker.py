"""An in-process fake Tinker server for the ``tinker`` SDK, 0.16.x and 0.38.x.

The SDK talks httpx, so the fake is an ``httpx.MockTransport`` handler: register
:meth:`FakeTinker.http_client` for the fake's :attr:`FakeTinker.url` in the adapters'
test hook ``crucible_train.adapters.tinker._sdk.http_client_factories`` (or call
:meth:`FakeTinker.register`) and point an adapter's ``base_url`` at that URL. Response shapes
follow real exchanges with a skyrl-tx 0.3.0 server (0.16.1 SDK); 0.38 additionally calls
``/api/v1/client/config`` first and sends ``forward_backward`` (and ``forward``, as
``forward_only``) as protobuf, possibly zstd-compressed, which is decoded here with the
SDK's own ``tinker/proto/tinker_public_pb2.py``.

Every request is recorded (:attr:`FakeTinker.requests`) with its path, a normalised
*operation* (``forward`` for 0.38's forward-only protobuf requests too), the decoded body
and the headers minus credentials, so tests can assert what the adapter caused.

The "model" is a bigram table ``W[prev, next]`` (vocabulary :data:`VOCAB`): logprobs are
``log_softmax(W[token])[target]``, ``forward_backward`` accumulates exact gradients of
the requested loss, ``optim_step`` applies SGD with the given learning rate, states and
sampler weights are snapshots of ``W``. Small, deterministic, and enough for the
contract suites (loss goes down, states round-trip, sampler logprobs match the learner).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import httpx
import numpy as np

VOCAB = 32
"""Token ids the fake model knows (0 .. VOCAB-1)."""

SKYRL_LOSSES = frozenset({"cross_entropy", "importance_sampling", "ppo"})
"""The losses skyrl-tx 0.3.0 accepts; it answers 422 for the others."""

_INSTANCES = itertools.count(1)
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie"})


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the SDK sent: where, what for, and what (secrets removed)."""

    path: str
    op: str
    body: Any
    headers: Mapping[str, str]


def _log_softmax(row: np.ndarray) -> np.ndarray:
    shifted = row - row.max()
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
    return result


def _tensor_from_proto(pb: Any, tensor: Any) -> dict[str, Any]:
    dtype = {pb.DTYPE_FLOAT32: "float32", pb.DTYPE_INT64: "int64"}[tensor.dtype]
    data = np.frombuffer(tensor.dense, dtype=np.dtype(dtype)).tolist()
    return {"data": data, "dtype": dtype, "shape": list(tensor.shape) or None}


def decode_forward_backward_proto(content: bytes, encoding: str | None) -> tuple[str, dict]:
    """A 0.38 protobuf ``forward_backward`` body as ``(op, 0.16-style JSON body)``."""
    from tinker.proto import tinker_public_pb2 as pb

    if encoding == "zstd":
        import zstandard

        content = zstandard.ZstdDecompressor().decompress(content)
    message = pb.ForwardBackwardRequest()
    message.ParseFromString(content)
    data = []
    for datum in message.data:
        chunks = []
        for chunk in datum.model_input:
            kind = chunk.WhichOneof("chunk") if chunk.DESCRIPTOR.oneofs else None
            if kind == "image" or chunk.HasField("image"):
                chunks.append({"type": "image", "format": chunk.image.format})
            else:
                tokens = np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32).tolist()
                chunks.append({"tokens": tokens})
        inputs = {name: _tensor_from_proto(pb, t) for name, t in datum.loss_fn_inputs.items()}
        data.append({"loss_fn_inputs": inputs, "model_input": {"chunks": chunks}})
    config = dict(message.loss_fn_config) or None
    body = {
        "forward_backward_input": {
            "data": data,
            "loss_fn": message.loss_fn,
            "loss_fn_config": config,
        },
        "model_id": message.model_id,
        "seq_id": message.seq_id,
    }
    return ("forward" if message.forward_only else "forward_backward"), body


def encode_proto_result(result: Mapping[str, Any]) -> bytes | None:
    """A future's JSON result as the 0.38 protobuf response, for the two types it needs.

    0.38 refuses JSON for ``ForwardBackwardOutput`` and ``SampleResponse`` (it sends
    ``Accept: application/x-protobuf`` when retrieving them). ``None`` for other results.
    """
    from tinker.proto import tinker_public_pb2 as pb

    if "loss_fn_outputs" in result:
        message = pb.ForwardBackwardOutput()
        message.loss_fn_output_type = result["loss_fn_output_type"]
        for key, value in result["metrics"].items():
            message.metrics[key] = float(value)
        outputs = result["loss_fn_outputs"]
        record = message.loss_fn_outputs.add()
        record.num_datums = len(outputs)
        for name in outputs[0] if outputs else ():
            arrays = [np.asarray(out[name]["data"], dtype=np.float32) for out in outputs]
            batched = record.fields[name]
            batched.dtype = pb.DTYPE_FLOAT32
            batched.data = b"".join(a.tobytes() for a in arrays)
            offsets = np.cumsum([0, *(a.nbytes for a in arrays)]).astype(np.int64)
            batched.offsets = offsets.tobytes()
        return bytes(message.SerializeToString())
    if "sequences" in result:
        message = pb.SampleResponse()
        reasons = {"stop": pb.STOP_REASON_STOP, "length": pb.STOP_REASON_LENGTH}
        for sequence in result["sequences"]:
            out = message.sequences.add()
            out.stop_reason = reasons[sequence["stop_reason"]]
            out.tokens = np.asarray(sequence["tokens"], dtype=np.int32).tobytes()
            out.logprobs = np.asarray(sequence["logprobs"], dtype=np.float32).tobytes()
        if result.get("prompt_logprobs") is not None:
            values = [np.nan if v is None else v for v in result["prompt_logprobs"]]
            message.prompt_logprobs = np.asarray(values, dtype=np.float32).tobytes()
        return bytes(message.SerializeToString())
    return None


class FakeTinker:
    """The fake server (see the module docstring).

    Args:
        api_key: when set, requests with another ``X-API-Key`` get 401 with
            ``{"detail": "Invalid API key"}``.
        supported_losses: loss names accepted; others get skyrl's 422.
        leading_none: ``compute_logprobs`` answers with a leading ``None`` (hosted
            Tinker) instead of ``length - 1`` values (skyrl-tx).
        seed: seeds the initial weights.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        supported_losses: frozenset[str] | None = None,
        leading_none: bool = False,
        seed: int = 0,
    ) -> None:
        self.url = f"http://fake-tinker-{next(_INSTANCES)}.invalid"
        """The base URL to give adapters; nothing listens there."""
        self.api_key = api_key
        self.supported_losses = supported_losses
        self.leading_none = leading_none
        self.requests: list[RecordedRequest] = []
        self.refuse_connections = False
        self.hang: set[str] = set()
        """Operations whose results never arrive (``retrieve_future`` says try again)."""
        self._lock = threading.Lock()
        self._accept_proto = False
        self._ids = itertools.count(1)
        self._futures: dict[str, Any] = {}
        self._future_ops: dict[str, str] = {}
        self._initial = np.random.default_rng(seed).normal(0.0, 0.5, size=(VOCAB, VOCAB))
        self.models: dict[str, dict[str, Any]] = {}
        self.saved: dict[str, np.ndarray] = {}
        self.samplers: dict[str, np.ndarray] = {}
        self.sampler_info: dict[str, dict[str, Any]] = {}

    # --- plumbing ------------------------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose requests this fake answers."""
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def register(self) -> Callable[[], None]:
        """Route the adapters' SDK traffic for :attr:`url` here; returns the undo.

        Tests may leave it registered: the URL is unique to this fake and cannot
        resolve, and SDK background traffic that outlives a test (heartbeats, a
        session's final request) then still reaches the fake instead of retrying
        DNS failures (with ``random`` jitter, which upsets hypothesis) for minutes.
        """
        from crucible_train.adapters.tinker import _sdk

        _sdk.http_client_factories[self.url] = self.http_client
        return lambda: _sdk.http_client_factories.pop(self.url, None)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Adapter keyword arguments pointing at this fake (``overrides`` win)."""
        return {
            "base_model": "fake-base",
            "base_url": self.url,
            "api_key": self.api_key or "tml-test-0123456789",
            "lora_rank": 4,
            "future_timeout_s": 30.0,
            **overrides,
        }

    def ops(self) -> list[str]:
        """The operations received, in order, without session keep-alive traffic."""
        return [r.op for r in self.requests if r.op not in _BACKGROUND]

    def bodies(self, op: str) -> list[Any]:
        """The decoded bodies of every ``op`` request, in order."""
        return [r.body for r in self.requests if r.op == op]

    def release(self) -> None:
        """Let hanging futures resolve (call at the end of a test that hung one)."""
        self.hang.clear()

    def handler(self, request: httpx.Request) -> Any:
        """The ``httpx.MockTransport`` handler."""
        if self.refuse_connections:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        path = request.url.path
        content_type = request.headers.get("content-type", "")
        op = path.rsplit("/", 1)[-1]
        body: Any = None
        if path.startswith("/api/v1/samplers/"):
            op, body = "samplers", {"sampler_id": op}
        if "protobuf" in content_type:
            op, body = decode_forward_backward_proto(
                request.content, request.headers.get("content-encoding")
            )
        elif request.content and body is None:
            body = json.loads(request.content)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
        with self._lock:
            self.requests.append(RecordedRequest(path=path, op=op, body=body, headers=headers))
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return httpx.Response(401, json={"detail": "Invalid API key"})
        route = _ROUTES.get(op)
        if route is None:
            return httpx.Response(404, json={"detail": f"Not Found: {path}"})
        with self._lock:
            self._accept_proto = "protobuf" in request.headers.get("accept", "")
            return route(self, body)

    def _future(self, op: str, result: Any, **extra: Any) -> httpx.Response:
        request_id = str(next(self._ids))
        self._futures[request_id] = result
        self._future_ops[request_id] = op
        return httpx.Response(
            200,
            json={"future_id": request_id, "status": "pending", "request_id": request_id, **extra},
        )

    # --- routes ----------------------------------------------------------------------------

    def _client_config(self, _body: Any) -> httpx.Response:
        # httpx transport (not pyqwest), so MockTransport sees every request.
        return httpx.Response(
            200, json={"pjwt_auth_enabled": False, "use_pyqwest_transport": False}
        )

    def _create_session(self, _body: Any) -> httpx.Response:
        session = f"session_{next(self._ids)}"
        return httpx.Response(200, json={"type": "create_session", "session_id": session})

    def _heartbeat(self, _body: Any) -> httpx.Response:
        return httpx.Response(200, json={"type": "session_heartbeat"})

    def _create_model(self, body: Any) -> httpx.Response:
        model_id = f"model_{next(self._ids)}"
        lora = body.get("lora_config") or {}
        self.models[model_id] = {
            "W": self._initial.copy(),
            "grad": np.zeros_like(self._initial),
            "base_model": body["base_model"],
            "lora": lora,
        }
        request_id = str(next(self._ids))
        self._futures[request_id] = {"model_id": model_id, "base_model": body["base_model"]}
        self._future_ops[request_id] = "create_model"
        return httpx.Response(
            200,
            json={
                "model_id": model_id,
                "base_model": body["base_model"],
                "status": "created",
                "request_id": request_id,
            },
        )

    def _get_info(self, body: Any) -> httpx.Response:
        model = self.models[body["model_id"]]
        return httpx.Response(
            200,
            json={
                "model_id": body["model_id"],
                "status": "created",
                "model_data": {
                    "base_model": model["base_model"],
                    "lora_config": {"rank": model["lora"].get("rank", 32), "seed": None},
                    "model_name": model["base_model"],
                },
            },
        )

    def _weights_info(self, body: Any) -> httpx.Response:
        path = body.get("tinker_path") or body.get("path")
        model_id = str(path).removeprefix("tinker://").split("/", 1)[0]
        model = self.models.get(model_id)
        if model is None or path not in self.saved:
            return httpx.Response(404, json={"detail": f"checkpoint not found: {path}"})
        return httpx.Response(
            200,
            json={
                "base_model": model["base_model"],
                "is_lora": True,
                "lora_rank": model["lora"].get("rank", 32),
            },
        )

    def _logprobs(self, weights: np.ndarray, datum: Mapping[str, Any]) -> tuple[list, list]:
        tokens = [t for chunk in datum["model_input"]["chunks"] for t in chunk["tokens"]]
        targets = datum["loss_fn_inputs"]["target_tokens"]["data"]
        if max(tokens + targets) >= VOCAB:
            raise ValueError(f"token id out of range (vocabulary {VOCAB})")
        return tokens, targets

    def _pass(self, body: Any, *, backward: bool) -> httpx.Response:
        request = body["forward_backward_input"]
        loss_fn = request["loss_fn"]
        if self.supported_losses is not None and loss_fn not in self.supported_losses:
            allowed = " or ".join(f"'{name}'" for name in sorted(self.supported_losses))
            return httpx.Response(
                422,
                json={
                    "detail": [
                        {
                            "type": "literal_error",
                            "loc": ["body", "forward_backward_input", "loss_fn"],
                            "msg": f"Input should be {allowed}",
                            "input": loss_fn,
                        }
                    ]
                },
            )
        model = self.models[body["model_id"]]
        weights = model["W"]
        outputs, total = [], 0.0
        for datum in request["data"]:
            try:
                tokens, targets = self._logprobs(weights, datum)
            except ValueError as exc:
                return httpx.Response(400, json={"detail": str(exc)})
            inputs = {
                k: np.asarray(v["data"], dtype=float) for k, v in datum["loss_fn_inputs"].items()
            }
            logprobs, losses = [], []
            for index, (token, target) in enumerate(zip(tokens, targets, strict=True)):
                row = _log_softmax(weights[token])
                logprob = float(row[target])
                if loss_fn == "cross_entropy":
                    coefficient = -inputs["weights"][index]  # d loss / d logprob
                    loss = coefficient * logprob
                else:
                    ratio = float(np.exp(logprob - inputs["logprobs"][index]))
                    coefficient = -ratio * inputs["advantages"][index]
                    loss = coefficient
                if backward:
                    onehot = np.zeros(VOCAB)
                    onehot[target] = 1.0
                    model["grad"][token] += coefficient * (onehot - np.exp(row))
                logprobs.append(logprob)
                losses.append(float(loss))
                total += float(loss)
            outputs.append(
                {
                    "logprobs": {"data": logprobs, "dtype": "float32", "shape": [len(logprobs)]},
                    "elementwise_loss": {
                        "data": losses,
                        "dtype": "float32",
                        "shape": [len(losses)],
                    },
                }
            )
        op = "forward_backward" if backward else "forward"
        return self._future(
            op,
            {
                "loss_fn_output_type": "scalar",
                "loss_fn_outputs": outputs,
                "metrics": {"loss:sum": total},
            },
        )

    def _forward_backward(self, body: Any) -> httpx.Response:
        return self._pass(body, backward=True)

    def _forward(self, body: Any) -> httpx.Response:
        # 0.16.x: a JSON "forward_input"; 0.38 sends forward_only protobuf (decoded above).
        if "forward_input" in body:
            body = {**body, "forward_backward_input": body["forward_input"]}
        return self._pass(body, backward=False)

    def _optim_step(self, body: Any) -> httpx.Response:
        model = self.models[body["model_id"]]
        params = body.get("adam_params") or body.get("optim_params") or {}
        model["W"] = model["W"] - params.get("learning_rate", 1e-4) * model["grad"]
        model["grad"] = np.zeros_like(model["grad"])
        return self._future("optim_step", {"metrics": None})

    def _save_weights(self, body: Any) -> httpx.Response:
        path = f"tinker://{body['model_id']}/weights/{body['path']}"
        self.saved[path] = self.models[body["model_id"]]["W"].copy()
        return self._future("save_weights", {"path": path, "type": "save_weights"})

    def _load_weights(self, body: Any) -> httpx.Response:
        path = body["path"]
        if path not in self.saved:
            return httpx.Response(400, json={"detail": f"checkpoint not found: {path}"})
        if body.get("model_id") is None:
            # 0.38's create_training_client_from_state*: a new model named the way the
            # SDK derives it, holding the saved weights.
            source = self.models[path.removeprefix("tinker://").split("/", 1)[0]]
            model_id = f"{body['session_id']}:train:{body['model_seq_id']}"
            self.models[model_id] = {**source, "grad": np.zeros_like(source["W"])}
            body = {**body, "model_id": model_id}
        model = self.models[body["model_id"]]
        model["W"] = self.saved[path].copy()
        model["grad"] = np.zeros_like(model["grad"])
        return self._future("load_weights", {"type": "load_weights"})

    def _save_weights_for_sampler(self, body: Any) -> httpx.Response:
        path = f"tinker://{body['model_id']}/{body['path']}"
        self.saved[path] = self.models[body["model_id"]]["W"].copy()
        return self._future(
            "save_weights_for_sampler",
            {"path": path, "type": "save_weights_for_sampler", "sampling_session_id": None},
        )

    def _create_sampling_session(self, body: Any) -> httpx.Response:
        path = body.get("model_path")
        if path is not None and path not in self.saved:
            return httpx.Response(400, json={"detail": f"sampler weights not found: {path}"})
        session = f"sampling_{next(self._ids)}"
        self.samplers[session] = self._initial.copy() if path is None else self.saved[path]
        self.sampler_info[session] = {
            "sampler_id": session,
            "base_model": body.get("base_model") or "fake-base",
            "model_path": path,
        }
        return httpx.Response(
            200, json={"type": "create_sampling_session", "sampling_session_id": session}
        )

    def _sample(self, body: Any) -> httpx.Response:
        weights = self.samplers[body["sampling_session_id"]]
        tokens = [t for chunk in body["prompt"]["chunks"] for t in chunk["tokens"]]
        if not tokens or max(tokens) >= VOCAB:
            return httpx.Response(400, json={"detail": "prompt empty or token id out of range"})
        params = body.get("sampling_params") or {}
        stop = params.get("stop") or []
        stop_ids = {s for s in stop if isinstance(s, int)}
        rng = np.random.default_rng(params.get("seed"))
        temperature = params.get("temperature", 1.0)
        sequences = []
        for index in range(body["num_samples"]):
            out, logprobs, reason, previous = [], [], "length", tokens[-1]
            for _ in range(params.get("max_tokens") or 16):
                row = _log_softmax(weights[previous])
                if temperature == 0:
                    token = int(np.argmax(row))
                else:
                    probs = np.exp(_log_softmax(weights[previous] / temperature))
                    token = int(rng.choice(VOCAB, p=probs / probs.sum()))
                out.append(token)
                logprobs.append(float(row[token]))
                previous = token
                if token in stop_ids:
                    reason = "stop"
                    break
            sequences.append(
                {
                    "stop_reason": reason,
                    "tokens": out,
                    "logprobs": logprobs,
                    "sequence_id": str(index),
                }
            )
        prompt_logprobs = None
        if body.get("prompt_logprobs"):
            values: list[float | None] = [
                float(_log_softmax(weights[a])[b]) for a, b in itertools.pairwise(tokens)
            ]
            prompt_logprobs = [None, *values] if self.leading_none else values
        # 0.38 stamps each sequence with an id the promise carries.
        ids = [
            f"{body['sampling_session_id']}:{body.get('seq_id')}:{i}" for i in range(len(sequences))
        ]
        return self._future(
            "asample",
            {"sequences": sequences, "prompt_logprobs": prompt_logprobs},
            sample_sequence_ids=ids,
        )

    def _sampler(self, body: Any) -> httpx.Response:
        info = self.sampler_info.get(body["sampler_id"])
        if info is None:
            return httpx.Response(404, json={"detail": f"no sampler {body['sampler_id']}"})
        return httpx.Response(200, json=info)

    def _retrieve_future(self, body: Any) -> Any:
        request_id = body["request_id"]
        if self._future_ops.get(request_id) in self.hang:

            async def later() -> httpx.Response:
                # Slowly, so the SDK's polling does not spin while the test waits.
                await asyncio.sleep(0.05)
                return httpx.Response(
                    200,
                    json={"type": "try_again", "request_id": request_id, "queue_state": "active"},
                )

            return later()
        self._future_ops.pop(request_id, None)
        result = self._futures.pop(request_id)
        encoded = encode_proto_result(result) if self._accept_proto else None
        if encoded is not None:
            return httpx.Response(
                200, content=encoded, headers={"content-type": "application/x-protobuf"}
            )
        return httpx.Response(200, json=result)

    def _ok(self, _body: Any) -> httpx.Response:
        return httpx.Response(200, json={})


_BACKGROUND = frozenset({"session_heartbeat", "telemetry", "dynamic_config", "config", "finish"})

_ROUTES: dict[str, Callable[[FakeTinker, Any], Any]] = {
    "config": FakeTinker._client_config,
    "create_session": FakeTinker._create_session,
    "session_heartbeat": FakeTinker._heartbeat,
    "create_model": FakeTinker._create_model,
    "get_info": FakeTinker._get_info,
    "weights_info": FakeTinker._weights_info,
    "forward_backward": FakeTinker._forward_backward,
    "forward": FakeTinker._forward,
    "optim_step": FakeTinker._optim_step,
    "save_weights": FakeTinker._save_weights,
    "load_weights": FakeTinker._load_weights,
    "save_weights_for_sampler": FakeTinker._save_weights_for_sampler,
    "create_sampling_session": FakeTinker._create_sampling_session,
    "asample": FakeTinker._sample,
    "retrieve_future": FakeTinker._retrieve_future,
    "samplers": FakeTinker._sampler,
    "telemetry": FakeTinker._ok,
    "finish": FakeTinker._ok,  # 0.38 ServiceClient.close: /api/v1/sessions/<id>/finish
}


def serve(monkeypatch: Any) -> Iterator[FakeTinker]:
    """Body of the tests' ``fake`` fixture: a registered fake with telemetry off.

    The fake stays registered afterwards (see :meth:`FakeTinker.register`); hanging
    futures are released so SDK threads of the test can finish.
    """
    monkeypatch.setenv("TINKER_TELEMETRY", "0")
    server = FakeTinker()
    server.register()
    yield server
    server.release()
