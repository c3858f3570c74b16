"""Local PyTorch engine: one SFT step through the TrainingClient port vs bare torch and TRL,
plus sampling throughput.

All on the default ``local_torch`` model (``LocalTorchModelSettings()``: random Qwen3,
built deterministically from its seed) and one fixed random batch of 8 sequences x 256
predicted tokens:

* ours: ``forward_backward(datums, "cross_entropy")`` + ``optim_step(AdamParams)`` through
  :class:`~crucible_train.adapters.local_torch.training_client.LocalTorchTrainingClient`,
  waiting on both futures;
* bare torch: the same math written directly: the same weights (same settings and seed),
  the same batch, cross-entropy with the same weights and targets reduced by a sum,
  ``torch.optim.AdamW`` with the same hyper-parameters;
* TRL: ``trl.SFTTrainer`` on the same model and data (an in-memory ``datasets.Dataset`` of
  the same token rows, 257 tokens each so it predicts the same 256 targets), fp32, no
  gradient checkpointing, no clipping, constant learning rate, no logging or saving, its
  default optimizer; a step is the time between two consecutive ``on_step_end``
  callbacks, so it includes TRL's data collation. Its loss is a mean instead of a sum,
  which costs the same. When TRL or ``datasets`` is missing its fields are null and
  ``trl`` says why;
* sampling: tokens/s of :class:`LocalTorchSamplingClient` generating 64 tokens after a
  32-token prompt (temperature 1, logprobs included) at batch 1 and 8; again at batch 8
  with a training client alive in the same process that has trained (the RL situation);
  and, for context, ``model.generate`` with per-token scores.

Why one child process per measurement: on a CPU, libgomp gives every thread that runs
parallel torch ops its own OpenMP pool, and once the pools hold more threads than there
are cores it stops spinning between parallel regions, so every op pays a thread wake-up.
Running the client's worker thread and a bare loop on the main thread in one process
slows both by 20-40 % (measured here), which would measure the benchmark's own layout,
not the client. So each system runs alone in a fresh ``python`` (the parent imports no
torch), the three alternate for ``ROUNDS`` rounds, and each reports ``STEPS`` step times
after ``WARMUP`` warm-up steps; a system's time is the median over all its rounds.

Prints ONE JSON line: ``ratio_vs_bare_torch`` (ours / bare, goal <= 1.05),
``ratio_vs_trl`` (ours / TRL, goal < 1), ``sampling_tok_s_b1``, ``sampling_tok_s_b8``, the
raw seconds, the setup and versions. Run from the repository root:
``python benchmarks/engine_step.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

ROUNDS = 3
STEPS = 10  # measured steps per round and system
WARMUP = 3
BATCH = 8
SEQ = 256  # predicted tokens per sequence
PROMPT_TOKENS = 32
NEW_TOKENS = 64
SAMPLE_RUNS = 7
PHASE_TIMEOUT_S = 900
ADAM = {
    "learning_rate": 1e-4,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.01,
    "grad_clip_norm": 0.0,
}


def _settings() -> dict[str, Any]:
    from crucible_train.adapters.local_torch.settings import LocalTorchModelSettings

    return attrs.asdict(LocalTorchModelSettings())


def _tokens(vocab_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab_size, size=(BATCH, SEQ + 1), dtype=np.int64)


def _median(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- (a) ours and bare torch ---------------------------------------------------------------------


def _ours_client(settings: dict[str, Any]) -> Any:
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient

    return LocalTorchTrainingClient(**settings)


def _ours_step(client: Any, tokens: np.ndarray) -> Callable[[], None]:
    from crucible_train.types import AdamParams, Datum, ModelInput

    datums = [
        Datum(
            model_input=ModelInput.from_ints(row[:-1].tolist()),
            loss_fn_inputs={"target_tokens": row[1:], "weights": np.ones(SEQ, np.float32)},
        )
        for row in tokens
    ]
    adam = AdamParams(**ADAM)

    def step() -> None:
        backward = client.forward_backward(datums, "cross_entropy")
        optim = client.optim_step(adam)
        backward.result()
        optim.result()

    return step


def _bare_step(settings: dict[str, Any], tokens: np.ndarray) -> Callable[[], None]:
    import torch
    import torch.nn.functional as functional

    from crucible_train.adapters.local_torch.model import build_model, resolve_settings

    model = build_model(resolve_settings(settings))
    vocab = int(model.get_input_embeddings().num_embeddings)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=ADAM["learning_rate"],
        betas=(ADAM["beta1"], ADAM["beta2"]),
        eps=ADAM["eps"],
        weight_decay=ADAM["weight_decay"],
    )
    ids = torch.from_numpy(tokens[:, :-1].copy())
    targets = torch.from_numpy(tokens[:, 1:].copy())
    weights = torch.ones(BATCH, SEQ)

    def step() -> None:
        logits = model(input_ids=ids, use_cache=False).logits
        nll = functional.cross_entropy(
            logits.float().reshape(-1, vocab), targets.reshape(-1), reduction="none"
        ).view(BATCH, SEQ)
        (nll * weights).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _timed_steps(step: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(WARMUP + STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times[WARMUP:]


def _phase_ours(settings: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    with _ours_client(settings) as client:
        return {"steps": _timed_steps(_ours_step(client, tokens))}


def _phase_bare(settings: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    return {"steps": _timed_steps(_bare_step(settings, tokens))}


# --- (b) TRL -----------------------------------------------------------------------------------


def _phase_trl(settings: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crucible-bench-trl-") as tmp:
        return _trl(settings, tokens, tmp)


def _trl(settings: dict[str, Any], tokens: np.ndarray, tmp: str) -> dict[str, Any]:
    try:
        import datasets
        import trl
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from transformers import PreTrainedTokenizerFast, TrainerCallback
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        return {"error": f"not installed: {exc}"}

    from crucible_train.adapters.local_torch.model import build_model, resolve_settings

    model = build_model(resolve_settings(settings))
    vocab = int(model.get_input_embeddings().num_embeddings)
    # A word-level tokenizer over the model's ids: SFTTrainer needs one for its pad token,
    # and the data is already tokenised, so nothing else reads it.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0")),
        pad_token="t0",
        eos_token="t1",
    )
    rows = [row.tolist() for row in tokens]
    dataset = datasets.Dataset.from_dict({"input_ids": rows * (WARMUP + STEPS)})

    class _StepTimes(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not self.marks:
                self.marks.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append(time.perf_counter())

    config = trl.SFTConfig(
        output_dir=os.path.join(tmp, "trl"),
        max_steps=WARMUP + STEPS,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=ADAM["learning_rate"],
        adam_beta1=ADAM["beta1"],
        adam_beta2=ADAM["beta2"],
        adam_epsilon=ADAM["eps"],
        weight_decay=ADAM["weight_decay"],
        max_grad_norm=0.0,  # no clipping, like grad_clip_norm=0
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=SEQ + 1,
        packing=False,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        dataloader_num_workers=0,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    times = _StepTimes()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # TRL's advice on settings we chose on purpose
        trainer = trl.SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[times],
        )
        trainer.train()
    steps = [b - a for a, b in zip(times.marks, times.marks[1:], strict=False)][WARMUP:]
    if len(steps) < STEPS:
        return {"error": f"TRL ran {len(times.marks) - 1} steps, expected {WARMUP + STEPS}"}
    return {"steps": steps, "optimizer": str(config.optim), "version": str(trl.__version__)}


# --- (c) sampling ------------------------------------------------------------------------------


def _sampling_rate(client: Any, prompt: Any, batch: int) -> tuple[float, float]:
    """(median seconds per call, tokens/s) for ``SAMPLE_RUNS`` calls after one warm-up."""
    from crucible_train.types import SamplingParams

    produced: list[int] = []

    def run() -> None:
        params = SamplingParams(max_tokens=NEW_TOKENS, temperature=1.0, seed=len(produced))
        response = client.sample(prompt, batch, params).result()
        produced.append(sum(len(s.tokens) for s in response.sequences))

    run()
    seconds = _median(run, SAMPLE_RUNS)
    return seconds, statistics.median(produced[1:]) / seconds


def _phase_sampling(settings: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    import torch

    from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient
    from crucible_train.types import ModelInput

    rng = np.random.default_rng(1)
    prompt_ids = rng.integers(0, settings["vocab_size"], size=PROMPT_TOKENS).tolist()
    prompt = ModelInput.from_ints(prompt_ids)
    out: dict[str, Any] = {}
    with LocalTorchSamplingClient(**settings) as client:
        for batch in (1, 8):
            seconds, rate = _sampling_rate(client, prompt, batch)
            out[f"sampling_s_b{batch}"] = seconds
            out[f"sampling_tok_s_b{batch}"] = rate
        # The RL situation: a training client in the same process has trained.
        with _ours_client(settings) as trainer:
            step = _ours_step(trainer, tokens)
            step()
            step()
            out["sampling_tok_s_b8_training_client_alive"] = _sampling_rate(client, prompt, 8)[1]

        # For context: transformers' generate() with per-token scores on the same model.
        model = client._model  # the benchmark may peek; the library never does
        ids = torch.tensor([prompt_ids])
        for batch in (1, 8):

            def generate(batch: int = batch) -> None:
                with torch.inference_mode():
                    output = model.generate(
                        ids.repeat(batch, 1),
                        attention_mask=torch.ones(batch, PROMPT_TOKENS, dtype=torch.long),
                        do_sample=True,
                        max_new_tokens=NEW_TOKENS,
                        min_new_tokens=NEW_TOKENS,
                        output_scores=True,
                        return_dict_in_generate=True,
                        pad_token_id=0,
                    )
                    model.compute_transition_scores(
                        output.sequences, output.scores, normalize_logits=True
                    )

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                generate()
                seconds = _median(generate, SAMPLE_RUNS)
            out[f"hf_generate_tok_s_b{batch}"] = batch * NEW_TOKENS / seconds
    return out


# --- the parent ------------------------------------------------------------------------------

_PHASES: dict[str, Callable[[dict[str, Any], np.ndarray], dict[str, Any]]] = {
    "ours": _phase_ours,
    "bare": _phase_bare,
    "trl": _phase_trl,
    "sampling": _phase_sampling,
}


def _child(name: str) -> None:
    """Run one phase in this (child) process and print its result as JSON."""
    settings = _settings()
    result = _PHASES[name](settings, _tokens(settings["vocab_size"]))
    sys.stdout.flush()
    print("\n" + json.dumps(result))


def _run(name: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its last stdout line is the result."""
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--phase", name],
        capture_output=True,
        text=True,
        timeout=PHASE_TIMEOUT_S,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"phase {name} exited with {completed.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("crucible-train", "torch", "transformers", "trl", "datasets", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    """Run every phase in its own process and print the JSON line."""
    steps: dict[str, list[float]] = {"ours": [], "bare": [], "trl": []}
    trl_detail: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for _ in range(ROUNDS):
        for name in steps:
            if name in errors:
                continue
            result = _run(name)
            if "error" in result:
                errors[name] = result["error"]
                continue
            steps[name].extend(result["steps"])
            if name == "trl":
                trl_detail = {"optimizer": result["optimizer"], "version": result["version"]}
    for name in ("ours", "bare"):
        if name in errors:
            raise SystemExit(f"engine_step: {errors[name]}")
    sampling = _run("sampling")
    if "error" in sampling:
        raise SystemExit(f"engine_step: {sampling['error']}")

    ours = statistics.median(steps["ours"])
    bare = statistics.median(steps["bare"])
    trl = statistics.median(steps["trl"]) if steps["trl"] else None
    settings = _settings()
    result: dict[str, Any] = {
        "ratio_vs_bare_torch": round(ours / bare, 3),
        "ratio_vs_trl": round(ours / trl, 3) if trl else None,
        "sampling_tok_s_b1": round(sampling["sampling_tok_s_b1"], 1),
        "sampling_tok_s_b8": round(sampling["sampling_tok_s_b8"], 1),
        "ours_step_s": round(ours, 4),
        "bare_torch_step_s": round(bare, 4),
        "trl_step_s": round(trl, 4) if trl else None,
        "sampling_s_b1": round(sampling["sampling_s_b1"], 4),
        "sampling_s_b8": round(sampling["sampling_s_b8"], 4),
        "sampling_tok_s_b8_training_client_alive": round(
            sampling["sampling_tok_s_b8_training_client_alive"], 1
        ),
        "hf_generate_tok_s_b1": round(sampling["hf_generate_tok_s_b1"], 1),
        "hf_generate_tok_s_b8": round(sampling["hf_generate_tok_s_b8"], 1),
        "rounds": ROUNDS,
        "steps_per_round": STEPS,
        "warmup_steps": WARMUP,
        "batch": [BATCH, SEQ],
        "adam": ADAM,
        "trl_optimizer": trl_detail.get("optimizer"),
        "sampling_setup": {"prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS},
        "model": {
            key: settings[key]
            for key in ("architecture", "vocab_size", "hidden_size", "num_layers", "num_heads")
        },
        "cpu_count": os.cpu_count(),
        "steps_s": {name: [round(t, 4) for t in times] for name, times in steps.items()},
        "versions": _versions(),
    }
    if trl is None:
        result["trl"] = errors.get("trl", "no TRL steps measured")
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--phase":
        _child(sys.argv[2])
    else:
        main()
