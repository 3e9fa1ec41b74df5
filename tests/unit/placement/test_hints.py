"""vLLM's start-up errors, as vLLM prints them, become hints with its own numbers."""

from __future__ import annotations

from vllmbench.placement.hints import from_log

MAX_LEN = ("(EngineCore_DP0 pid=214) ERROR 11-20 10:02:11 [core.py:708] ValueError: To serve at least one request "
           "with the models's max seq len (131072), (16.0 GiB KV cache is needed, which is larger than the available "
           "KV cache memory (9.47 GiB). Based on the available memory, the estimated maximum model length is 77584. "
           "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. See "
           "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
NO_MEMORY = ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
             "initializing the engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more "
             "details.")
FREE = ("ValueError: Free memory on device cuda:0 (7.34/15.49 GiB) on startup is less than desired GPU memory "
        "utilization (0.8, 12.39 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.")
V0 = ("ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in "
      "KV cache (15520). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the "
      "engine.")


def test_max_seq_len_too_long_suggests_vllms_estimate() -> None:
    [hint] = from_log("INFO loading weights\n" + MAX_LEN + "\nRuntimeError: Engine core initialization failed.")
    assert hint.kind == "max_model_len_too_long"
    assert hint.numbers == {"max_model_len": 131072, "kv_needed_gib": 16.0, "kv_available_gib": 9.47,
                            "estimated_max_model_len": 77584}
    assert hint.change == {"max_model_len": 77584}


def test_the_v0_engines_wording_too() -> None:
    [hint] = from_log(V0)
    assert hint.change == {"max_model_len": 15520}


def test_no_memory_for_the_cache_blocks() -> None:
    [hint] = from_log(NO_MEMORY, gpu_memory_utilization=0.8)
    assert hint.kind == "no_kv_memory" and hint.change["gpu_memory_utilization"] == 0.95
    assert "tensor_parallel_size" in hint.change


def test_free_memory_below_the_budget_says_how_much_others_hold() -> None:
    [hint] = from_log(FREE)
    assert hint.kind == "gpu_memory_taken"
    assert hint.numbers["held_by_others_gib"] == 8.15
    assert hint.change == {"gpu_memory_utilization": 0.47}
    assert "cuda:0" in hint.message
    [bare] = from_log("Free memory on device (6.92/8.0 GiB) on startup is less than desired GPU memory "
                      "utilization (0.9, 7.2 GiB).")
    assert bare.change == {"gpu_memory_utilization": 0.86}


def test_several_errors_in_log_order_and_none_in_a_clean_log() -> None:
    hints = from_log(FREE + "\n...\n" + NO_MEMORY + "\nCUDA out of memory. Tried to allocate 2.00 GiB")
    assert [h.kind for h in hints] == ["gpu_memory_taken", "no_kv_memory", "cuda_out_of_memory"]
    assert from_log("INFO: Application startup complete.\nGPU KV cache size: 419,888 tokens") == []
