"""LocalTorchSamplingClient on tiny random Qwen3 models built directly with transformers.

The central property: sampled logprobs are the raw (temperature-1) logprobs a
teacher-forced forward pass gives for the same tokens, whatever the sampling settings.
"""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from crucible_train.adapters.local_torch.sampling_client import (  # noqa: E402
    LocalTorchSamplingClient,
)
from crucible_train.errors import (  # noqa: E402
    ConfigurationError,
    InvalidDataError,
    SamplingClientError,
)
from crucible_train.ports.sampling import SamplingClient  # noqa: E402
from crucible_train.types import (  # noqa: E402
    EncodedTextChunk,
    ImageChunk,
    ModelInput,
    SamplingParams,
)

pytestmark = pytest.mark.torch

VOCAB = 128  # ids are ASCII codes, so the toy byte-level decoder below can decode anything
MAX_POSITIONS = 96
PROMPT = [72, 101, 108, 108, 111, 44, 32]  # "Hello, "
TOLERANCE = 1e-4


def ascii_decode(tokens: list[int]) -> str:
    """Byte-level toy decoder: token id = byte value (module level so it pickles)."""
    return bytes(tokens).decode("ascii")


def tiny_qwen3(seed: int = 0, **overrides) -> transformers.Qwen3ForCausalLM:
    torch.manual_seed(seed)
    config = transformers.Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=12,
        intermediate_size=96,
        max_position_embeddings=MAX_POSITIONS,
        **overrides,
    )
    return transformers.Qwen3ForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_qwen3()


@pytest.fixture
def client(model):
    with LocalTorchSamplingClient.from_model(model, decode=ascii_decode) as sampler:
        yield sampler


def forward_logprobs(model, tokens: list[int]) -> torch.Tensor:
    """Teacher-forced log p(tokens[i] | tokens[:i]) for i >= 1 (float32, full forward)."""
    with torch.no_grad():
        ids = torch.tensor([tokens])
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).squeeze(1)


def assert_logprobs_match_forward(model, prompt: list[int], sequence) -> None:
    expected = forward_logprobs(model, prompt + list(sequence.tokens))[len(prompt) - 1 :]
    got = torch.tensor(sequence.logprobs)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= TOLERANCE


def sample(client, num_samples=1, prompt=PROMPT, **params):
    return client.sample(ModelInput.from_ints(prompt), num_samples, SamplingParams(**params))


# --- logprobs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 1.0},
        {"temperature": 0.7},
        {"temperature": 1.3, "top_k": 5},
        {"temperature": 1.0, "top_p": 0.8},
        {"temperature": 0.7, "top_k": 20, "top_p": 0.9},
        {"temperature": 0.0},
    ],
    ids=["t1", "t0.7", "topk5", "topp0.8", "t0.7-topk-topp", "greedy"],
)
def test_sampled_logprobs_are_raw_forward_logprobs(client, model, params):
    response = sample(client, 4, max_tokens=24, seed=3, **params).result()
    assert len(response.sequences) == 4
    for sequence in response.sequences:
        assert len(sequence.tokens) == 24
        assert_logprobs_match_forward(model, PROMPT, sequence)


def test_greedy_takes_the_argmax_of_the_forward_logits_at_every_step(client, model):
    sequence = sample(client, max_tokens=20, temperature=0.0).result().sequences[0]
    context = list(PROMPT)
    with torch.no_grad():
        for token in sequence.tokens:
            logits = model(input_ids=torch.tensor([context]), use_cache=False).logits[0, -1]
            assert token == int(logits.argmax())
            context.append(token)


def test_greedy_samples_are_identical(client):
    response = sample(client, 3, max_tokens=12, temperature=0.0).result()
    assert len({seq.tokens for seq in response.sequences}) == 1


def test_top_k_one_and_tiny_top_p_are_greedy(client):
    greedy = sample(client, max_tokens=15, temperature=0.0).result().sequences[0].tokens
    top_k_one = sample(client, 2, max_tokens=15, top_k=1, seed=5).result()
    tiny_top_p = sample(client, 2, max_tokens=15, top_p=1e-6, seed=5).result()
    for sequence in (*top_k_one.sequences, *tiny_top_p.sequences):
        assert sequence.tokens == greedy


def test_first_token_frequencies_follow_the_processed_distribution(client, model):
    temperature, top_k, n = 0.5, 3, 3000
    response = sample(client, n, max_tokens=1, temperature=temperature, top_k=top_k, seed=0)
    counts = Counter(seq.tokens[0] for seq in response.result().sequences)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([PROMPT])).logits[0, -1] / temperature
    values, ids = logits.topk(top_k)
    expected = dict(zip(ids.tolist(), torch.softmax(values, -1).tolist(), strict=True))
    assert set(counts) <= set(expected)
    for token, probability in expected.items():
        assert abs(counts[token] / n - probability) < 0.04


def test_top_p_only_draws_from_the_nucleus(client, model):
    top_p = 0.3
    response = sample(client, 500, max_tokens=1, top_p=top_p, seed=1).result()
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([PROMPT])).logits[0, -1], -1)
    sorted_probs, ids = probs.sort(descending=True)
    mass_before = sorted_probs.cumsum(0) - sorted_probs
    nucleus = set(ids[mass_before < top_p].tolist())
    drawn = {seq.tokens[0] for seq in response.sequences}
    assert drawn <= nucleus
    assert len(drawn) > 1  # it does sample, not just take the argmax


def test_compute_logprobs_matches_forward_and_starts_with_none(client, model):
    tokens = [*PROMPT, 1, 2, 3, 120, 127, 0]
    values = client.compute_logprobs(ModelInput.from_ints(tokens)).result()
    assert len(values) == len(tokens)
    assert values[0] is None
    expected = forward_logprobs(model, tokens)
    assert float((torch.tensor(values[1:]) - expected).abs().max()) <= 1e-5


def test_compute_logprobs_of_one_token_is_just_none(client):
    assert client.compute_logprobs(ModelInput.from_ints([5])).result() == [None]


def test_compute_logprobs_agrees_with_sampled_logprobs(client):
    sequence = sample(client, max_tokens=16, seed=9).result().sequences[0]
    scored = client.compute_logprobs(ModelInput.from_ints(PROMPT + list(sequence.tokens)))
    tail = scored.result()[len(PROMPT) :]
    assert max(abs(a - b) for a, b in zip(tail, sequence.logprobs, strict=True)) <= TOLERANCE


# --- seeds ---------------------------------------------------------------------------------


def test_same_seed_same_tokens_and_logprobs(client):
    first = sample(client, 3, max_tokens=20, temperature=0.9, top_p=0.95, seed=42).result()
    second = sample(client, 3, max_tokens=20, temperature=0.9, top_p=0.95, seed=42).result()
    assert first == second


def test_same_seed_same_tokens_across_clients(model):
    with (
        LocalTorchSamplingClient.from_model(model) as one,
        LocalTorchSamplingClient.from_model(model) as two,
    ):
        assert sample(one, 2, max_tokens=10, seed=7).result() == (
            sample(two, 2, max_tokens=10, seed=7).result()
        )


def test_different_seeds_give_different_tokens(client):
    runs = {
        sample(client, max_tokens=20, seed=seed).result().sequences[0].tokens for seed in (1, 2, 3)
    }
    assert len(runs) == 3


def test_samples_of_one_call_differ(client):
    response = sample(client, 4, max_tokens=20, seed=0).result()
    assert len({seq.tokens for seq in response.sequences}) == 4


def test_unseeded_calls_differ(client):
    runs = {sample(client, max_tokens=20).result().sequences[0].tokens for _ in range(3)}
    assert len(runs) == 3


def test_a_sample_does_not_depend_on_when_the_others_stop(client):
    free = sample(client, 4, max_tokens=20, seed=11).result().sequences
    stop_token = free[0].tokens[2]  # sample 0 now stops early; the others must not change
    stopped = sample(client, 4, max_tokens=20, seed=11, stop=[stop_token]).result().sequences
    for before, after in zip(free, stopped, strict=True):
        if stop_token in before.tokens:
            cut = before.tokens.index(stop_token) + 1
            assert after.tokens == before.tokens[:cut]
            assert after.stop_reason == "stop"
        else:
            # Same tokens; logprobs agree up to rounding (a smaller batch changes the kernels).
            assert after.tokens == before.tokens
            assert after.stop_reason == before.stop_reason
            assert after.logprobs == pytest.approx(before.logprobs, abs=1e-5)


# --- stopping ------------------------------------------------------------------------------


def test_max_tokens_gives_length(client):
    for sequence in sample(client, 5, max_tokens=7, seed=0).result().sequences:
        assert len(sequence.tokens) == 7
        assert len(sequence.logprobs) == 7
        assert sequence.stop_reason == "length"


def test_no_max_tokens_runs_to_max_seq_length(model):
    with LocalTorchSamplingClient.from_model(model, max_seq_length=len(PROMPT) + 5) as sampler:
        sequence = sample(sampler, seed=0).result().sequences[0]
    assert len(sequence.tokens) == 5
    assert sequence.stop_reason == "length"


def test_max_tokens_is_capped_by_max_seq_length(model):
    with LocalTorchSamplingClient.from_model(model, max_seq_length=len(PROMPT) + 3) as sampler:
        sequence = sample(sampler, max_tokens=50, seed=0).result().sequences[0]
    assert len(sequence.tokens) == 3
    assert sequence.stop_reason == "length"


def test_default_max_seq_length_is_the_models_position_limit(model):
    with LocalTorchSamplingClient.from_model(model) as sampler:
        assert sampler.max_seq_length == MAX_POSITIONS
        sequence = sample(sampler, temperature=0.0).result().sequences[0]
    assert len(PROMPT) + len(sequence.tokens) == MAX_POSITIONS


def test_stop_token_id_ends_the_sample_and_is_included(client):
    free = sample(client, max_tokens=30, temperature=0.0).result().sequences[0].tokens
    stop_token = free[5]
    cut = free.index(stop_token) + 1
    sequence = sample(client, max_tokens=30, temperature=0.0, stop=[stop_token, 0])
    result = sequence.result().sequences[0]
    assert result.tokens == free[:cut]
    assert result.stop_reason == "stop"
    assert len(result.logprobs) == cut


def test_stop_ids_that_never_appear_change_nothing(client):
    free = sample(client, 2, max_tokens=15, seed=4).result()
    unused = next(t for t in range(VOCAB) if all(t not in s.tokens for s in free.sequences))
    assert sample(client, 2, max_tokens=15, seed=4, stop=[unused]).result() == free


def test_stop_string_ends_the_sample_and_is_included(client):
    free = sample(client, max_tokens=40, seed=21).result().sequences[0].tokens
    text = ascii_decode(list(free))
    stop = text[10:12]
    end = text.index(stop) + len(stop)  # one token per character with this decoder
    result = sample(client, max_tokens=40, seed=21, stop=[stop, "\x7f\x7f\x7f"]).result()
    sequence = result.sequences[0]
    assert sequence.tokens == free[:end]
    assert ascii_decode(list(sequence.tokens)).endswith(stop)
    assert sequence.stop_reason == "stop"


def test_stop_string_given_as_one_string(client):
    free = sample(client, max_tokens=40, seed=22).result().sequences[0].tokens
    stop = ascii_decode([free[6]])
    sequence = sample(client, max_tokens=40, seed=22, stop=stop).result().sequences[0]
    assert sequence.tokens == free[: free.index(free[6]) + 1]
    assert sequence.stop_reason == "stop"


def test_eos_token_from_the_model_config_stops(model):
    with LocalTorchSamplingClient.from_model(model) as plain:
        free = sample(plain, max_tokens=30, temperature=0.0).result().sequences[0].tokens
    eos = free[4]
    eos_model = tiny_qwen3(eos_token_id=eos)  # same seed, so the same weights
    with LocalTorchSamplingClient.from_model(eos_model) as sampler:
        assert sampler.eos_token_ids == frozenset({eos})
        sequence = sample(sampler, max_tokens=30, temperature=0.0).result().sequences[0]
        # stop=[] does not turn end-of-sequence off: the model's own end always ends a sample
        also = sample(sampler, max_tokens=30, temperature=0.0, stop=[]).result().sequences[0]
    assert sequence.tokens == free[: free.index(eos) + 1]
    assert sequence.stop_reason == "stop"
    assert also == sequence


def test_eos_ids_from_the_generation_config_and_lists(model):
    eos_model = tiny_qwen3(eos_token_id=[3, 4])
    eos_model.generation_config.eos_token_id = 9
    with LocalTorchSamplingClient.from_model(eos_model) as sampler:
        assert sampler.eos_token_ids == frozenset({3, 4, 9})


def test_samples_stopping_at_different_steps(client):
    free = sample(client, 6, max_tokens=25, seed=13).result().sequences
    stop_token = Counter(t for seq in free for t in seq.tokens[:10]).most_common(1)[0][0]
    stopped = sample(client, 6, max_tokens=25, seed=13, stop=[stop_token]).result().sequences
    lengths = {len(seq.tokens) for seq in stopped}
    assert len(lengths) > 1
    for before, after in zip(free, stopped, strict=True):
        assert after.tokens == before.tokens[: len(after.tokens)]
        assert after.stop_reason == ("stop" if stop_token in before.tokens else "length")


# --- futures and lifecycle -------------------------------------------------------------------


def test_futures_resolve_in_submission_order(client):
    done: list[int] = []
    futures = []
    for index in range(6):
        future = (
            sample(client, 2, max_tokens=8, seed=index)
            if index % 2 == 0
            else client.compute_logprobs(ModelInput.from_ints([*PROMPT, index]))
        )
        future.add_done_callback(lambda _f, index=index: done.append(index))
        futures.append(future)
    results = [future.result(timeout=60) for future in futures]
    assert done == list(range(6))
    assert results[0] == sample(client, 2, max_tokens=8, seed=0).result()
    assert len(results[1]) == len(PROMPT) + 1


def test_calls_from_several_threads(client):
    results: dict[int, object] = {}

    def work(seed: int) -> None:
        results[seed] = sample(client, 2, max_tokens=6, seed=seed).result(timeout=60)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in range(4):
        assert results[seed] == sample(client, 2, max_tokens=6, seed=seed).result()


def test_close_finishes_submitted_work_then_refuses(model):
    sampler = LocalTorchSamplingClient.from_model(model)
    pending = sample(sampler, 2, max_tokens=10, seed=0)
    sampler.close()
    assert pending.done()
    assert len(pending.result().sequences) == 2
    with pytest.raises(SamplingClientError, match="closed"):
        sample(sampler, max_tokens=2)
    with pytest.raises(SamplingClientError, match="closed"):
        sampler.compute_logprobs(ModelInput.from_ints(PROMPT))
    sampler.close()  # idempotent


def test_model_failure_fails_the_future_with_sampling_client_error():
    broken = tiny_qwen3()
    broken.model.layers[0].self_attn.q_proj.weight = torch.nn.Parameter(torch.zeros(3, 3))
    with LocalTorchSamplingClient.from_model(broken) as sampler:
        future = sample(sampler, max_tokens=3)
        with pytest.raises(SamplingClientError, match="local_torch sampler failed"):
            future.result(timeout=60)
        with pytest.raises(SamplingClientError):
            sampler.compute_logprobs(ModelInput.from_ints(PROMPT)).result(timeout=60)


def _worker_threads(sampler) -> int:
    return sampler._executor.submit(torch.get_num_threads).result(timeout=60)


def test_small_models_decode_on_one_thread_and_other_threads_keep_theirs(model):
    process_setting = torch.get_num_threads()
    with LocalTorchSamplingClient.from_model(model) as sampler:
        assert _worker_threads(sampler) == 1
        with ThreadPoolExecutor(1) as fresh:  # a thread started later, like a trainer's
            assert fresh.submit(torch.get_num_threads).result() == process_setting
    assert torch.get_num_threads() == process_setting


def test_decode_threads_can_be_chosen(model):
    with LocalTorchSamplingClient.from_model(model, decode_threads=2) as sampler:
        assert _worker_threads(sampler) == 2
        assert len(sample(sampler, 2, max_tokens=4, seed=0).result().sequences) == 2


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_decode_threads(model, threads):
    with pytest.raises(ConfigurationError, match="decode_threads"):
        LocalTorchSamplingClient.from_model(model, decode_threads=threads)


def test_is_a_sampling_client(client):
    assert isinstance(client, SamplingClient)
    assert client.vocab_size == VOCAB


def test_pickled_from_model_client_samples_the_same(client):
    copy = pickle.loads(pickle.dumps(client))
    try:
        assert sample(copy, 2, max_tokens=10, seed=3, stop="zz").result() == (
            sample(client, 2, max_tokens=10, seed=3, stop="zz").result()
        )
    finally:
        copy.close()


def test_from_pretrained_loads_saved_weights_and_pickles(tmp_path, model, client):
    model.save_pretrained(tmp_path / "weights")
    loaded = LocalTorchSamplingClient.from_pretrained(str(tmp_path / "weights"))
    copy = pickle.loads(pickle.dumps(loaded))
    try:
        expected = sample(client, 3, max_tokens=12, seed=8).result()
        assert sample(loaded, 3, max_tokens=12, seed=8).result() == expected
        assert sample(copy, 3, max_tokens=12, seed=8).result() == expected
    finally:
        loaded.close()
        copy.close()


def test_from_pretrained_missing_directory(tmp_path):
    with pytest.raises(ConfigurationError, match="is not a directory"):
        LocalTorchSamplingClient.from_pretrained(str(tmp_path / "nothing"))


def test_from_pretrained_bad_dtype(tmp_path, model):
    model.save_pretrained(tmp_path / "weights")
    with pytest.raises(ConfigurationError, match="dtype"):
        LocalTorchSamplingClient.from_pretrained(str(tmp_path / "weights"), dtype="float64")


def test_bfloat16_weights_sample(tmp_path, model):
    model.save_pretrained(tmp_path / "weights")
    with LocalTorchSamplingClient.from_pretrained(
        str(tmp_path / "weights"), dtype="bfloat16"
    ) as sampler:
        sequence = sample(sampler, 2, max_tokens=6, seed=0).result().sequences[0]
    assert len(sequence.tokens) == 6
    assert all(lp <= 0 for lp in sequence.logprobs)


# --- built from the local_torch settings ------------------------------------------------------

SMALL_SETTINGS = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
    "max_seq_length": 64,
    "seed": 3,
}


def test_built_from_settings_samples_exact_logprobs_and_pickles():
    with LocalTorchSamplingClient(decode=ascii_decode, **SMALL_SETTINGS) as sampler:
        assert sampler.vocab_size == VOCAB
        assert sampler.max_seq_length == 64
        response = sample(sampler, 2, max_tokens=10, seed=0).result()
        scored = sampler.compute_logprobs(
            ModelInput.from_ints(PROMPT + list(response.sequences[0].tokens))
        ).result()
        assert scored[len(PROMPT) :] == pytest.approx(response.sequences[0].logprobs, abs=TOLERANCE)
        copy = pickle.loads(pickle.dumps(sampler))
        try:
            # Same settings and seed: the copy rebuilds bit-identical weights.
            assert sample(copy, 2, max_tokens=10, seed=0).result() == response
        finally:
            copy.close()


def test_built_from_settings_with_lora_adapters():
    settings = {**SMALL_SETTINGS, "lora_rank": 4}
    with (
        LocalTorchSamplingClient(**settings) as lora,
        LocalTorchSamplingClient(**SMALL_SETTINGS) as plain,
    ):
        # Fresh LoRA adapters start at zero (B = 0), so the model is the base model.
        lora_response = sample(lora, 2, max_tokens=8, seed=1).result()
        plain_response = sample(plain, 2, max_tokens=8, seed=1).result()
    for a, b in zip(lora_response.sequences, plain_response.sequences, strict=True):
        assert a.tokens == b.tokens
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_sampler_logprobs_equal_the_training_clients_after_training(tmp_path):
    # The RL round trip: train, save for the sampler, sample, score with the learner.
    # Sampler and learner must agree, or importance-sampling ratios are off from step one.
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient
    from crucible_train.types import AdamParams, Datum

    def datum(tokens: list[int]) -> Datum:
        n = len(tokens) - 1
        return Datum(
            model_input=ModelInput.from_ints(tokens[:-1]),
            loss_fn_inputs={"target_tokens": tokens[1:], "weights": [1.0] * n},
        )

    with LocalTorchTrainingClient(**SMALL_SETTINGS, checkpoint_dir=str(tmp_path)) as trainer:
        trainer.forward_backward([datum([*PROMPT, 1, 2, 3])], "cross_entropy")
        trainer.optim_step(AdamParams(learning_rate=1e-2))
        path = trainer.save_weights_for_sampler("step1").result(timeout=60)
        sampler = trainer.create_sampling_client(path)
        try:
            sequences = sample(sampler, 3, max_tokens=12, seed=2, temperature=0.8).result()
            for sequence in sequences.sequences:
                full = PROMPT + list(sequence.tokens)
                scored = trainer.forward([datum(full)], "cross_entropy").result(timeout=60)
                learner = scored.loss_fn_outputs[0]["logprobs"].to_numpy()[len(PROMPT) - 1 :]
                assert learner.tolist() == pytest.approx(sequence.logprobs, abs=TOLERANCE)
        finally:
            sampler.close()


def test_bad_settings_are_reported():
    with pytest.raises(ConfigurationError, match="hidden_size"):
        LocalTorchSamplingClient(hidden_size=0)
    with pytest.raises(ConfigurationError, match="num_kv_heads"):
        LocalTorchSamplingClient(num_heads=4, num_kv_heads=3)


# --- bad input -------------------------------------------------------------------------------


def test_empty_prompt(client):
    with pytest.raises(InvalidDataError, match="prompt is empty"):
        client.sample(ModelInput.empty(), 1, SamplingParams())
    with pytest.raises(InvalidDataError, match="prompt is empty"):
        client.compute_logprobs(ModelInput.empty())


def test_image_chunks_are_refused(client):
    image = ImageChunk(data=b"\x89PNG", format="png", expected_tokens=4)
    prompt = ModelInput(chunks=(EncodedTextChunk(tokens=PROMPT), image))
    with pytest.raises(InvalidDataError, match="chunk 1 is an image"):
        client.sample(prompt, 1, SamplingParams())
    with pytest.raises(InvalidDataError, match="chunk 1 is an image"):
        client.compute_logprobs(prompt)


def test_token_outside_the_vocabulary(client):
    with pytest.raises(InvalidDataError, match=r"position 2 is 128.*ids 0\.\.127"):
        client.sample(ModelInput.from_ints([1, 2, VOCAB]), 1, SamplingParams())
    with pytest.raises(InvalidDataError, match="outside"):
        client.compute_logprobs(ModelInput.from_ints([VOCAB + 5]))


@pytest.mark.parametrize("num_samples", [0, -1, True, 1.5, "2"])
def test_bad_num_samples(client, num_samples):
    with pytest.raises(ConfigurationError, match="num_samples"):
        client.sample(ModelInput.from_ints(PROMPT), num_samples, SamplingParams())


def test_params_must_be_sampling_params(client):
    with pytest.raises(ConfigurationError, match="SamplingParams"):
        client.sample(ModelInput.from_ints(PROMPT), 1, {"max_tokens": 3})


def test_prompt_must_be_a_model_input(client):
    with pytest.raises(InvalidDataError, match="ModelInput"):
        client.sample(PROMPT, 1, SamplingParams())


def test_stop_strings_need_a_decoder(model):
    with LocalTorchSamplingClient.from_model(model) as sampler:
        with pytest.raises(ConfigurationError, match="decoder"):
            sample(sampler, stop=["\n"])
        assert sample(sampler, max_tokens=2, stop=[10]).result()  # ids need none


def test_stop_ids_outside_the_vocabulary(client):
    with pytest.raises(InvalidDataError, match=r"stop token ids \[500\]"):
        sample(client, stop=[1, 500])


def test_prompt_too_long(model):
    with LocalTorchSamplingClient.from_model(model, max_seq_length=len(PROMPT)) as sampler:
        with pytest.raises(InvalidDataError, match="no room to generate"):
            sample(sampler)
        assert len(sampler.compute_logprobs(ModelInput.from_ints(PROMPT)).result()) == len(PROMPT)
        with pytest.raises(InvalidDataError, match="max_seq_length"):
            sampler.compute_logprobs(ModelInput.from_ints([*PROMPT, 1]))
