"""What each container becomes on this machine (table tests of the pure mapping)."""

from __future__ import annotations

import sys

import pytest

from vllmbench.runtimes.local import images, podspec

VLLMBENCH = images.vllmbench_argv()


@pytest.mark.parametrize(("image", "command", "args", "argv"), [
    ("ghcr.io/vllmbench/vllmbench:0.1", None, ["run", "--url", "u"], [*VLLMBENCH, "run", "--url", "u"]),
    ("vllmbench", ["vllmbench", "simulate"], ["--port", "9"], [*VLLMBENCH, "simulate", "--port", "9"]),
    ("vllmbench", ["/usr/local/bin/vllmbench"], ["run"], [*VLLMBENCH, "run"]),
    ("vllmbench", ["python3", "-m", "vllmbench.simulator"], None, [sys.executable, "-m", "vllmbench.simulator"]),
    ("vllmbench", ["sh", "-c", "exec vllmbench run --url $(URL)"], None, [*VLLMBENCH, "run", "--url", "$(URL)"]),
])
def test_vllmbench_images_run_the_installed_vllmbench(image, command, args, argv) -> None:
    found = images.program(image, command, args, ports=[])
    assert not isinstance(found, str), found
    assert found.argv == argv and found.runs_as == "vllmbench"


@pytest.mark.parametrize(("command", "args", "names", "flags", "ignored", "port"), [
    (None, ["--model", "meta-llama/Llama-3.1-8B", "--port", "8080"], ["meta-llama/Llama-3.1-8B"], [], [], 8080),
    (None, ["Qwen/Qwen3-0.6B", "--served-model-name", "qwen", "small", "--max-num-seqs=32"], ["qwen", "small"],
     ["--max-num-seqs", "32"], [], 8000),
    (["vllm", "serve"], ["m", "--max-model-len", "8192", "--tensor-parallel-size", "2", "--enforce-eager"], ["m"],
     ["--max-model-len", "8192"], ["--tensor-parallel-size 2", "--enforce-eager"], 8000),
    (["python3", "-m", "vllm.entrypoints.openai.api_server"], ["--model", "m", "--host", "0.0.0.0"], ["m"], [], [],
     8000),
])
def test_vllm_images_run_the_simulator_without_vllm(monkeypatch, command, args, names, flags, ignored, port) -> None:
    monkeypatch.setattr(images, "vllm_binary", lambda: None)
    found = images.program("vllm/vllm-openai:v0.11.0", command, args, ports=[8000])
    assert not isinstance(found, str), found
    expected = [*VLLMBENCH, "simulate", "--host", "127.0.0.1", "--port", str(port)]
    for name in names:
        expected += ["--model", name]
    assert found.argv == expected + flags
    assert found.runs_as == "simulator" and found.ignored == ignored and found.listen_port == port


def test_vllm_images_run_vllm_serve_where_it_is_installed(monkeypatch) -> None:
    monkeypatch.setattr(images, "vllm_binary", lambda: "/opt/vllm/bin/vllm")
    found = images.program("docker.io/vllm/vllm-openai", None, ["m", "--port", "8001", "--host", "0.0.0.0",
                                                                 "--dtype", "half"], ports=[8001])
    assert found.argv == ["/opt/vllm/bin/vllm", "serve", "m", "--dtype", "half", "--host", "127.0.0.1", "--port",
                          "8001"]
    assert found.runs_as == "vllm" and found.ignored == []


@pytest.mark.parametrize(("image", "command", "args", "says"), [
    ("busybox:1.36", ["echo"], None, "is not runnable locally"),
    ("nginx", None, None, "is not runnable locally"),
    ("vllmbench", ["bash", "-c", "vllmbench run; echo done"], None, "not one simple command"),
    ("vllmbench", ["curl", "x"], None, "is not vllmbench or python"),
    ("vllmbench", None, None, "no command or args"),
    ("vllm/vllm-openai", ["sleep", "10"], None, "is not vllm serve"),
])
def test_everything_else_is_not_run_and_says_so(monkeypatch, image, command, args, says) -> None:
    monkeypatch.setattr(images, "vllm_binary", lambda: None)
    found = images.program(image, command, args, ports=[])
    assert isinstance(found, str) and says in found


@pytest.mark.parametrize(("image", "family"), [
    ("vllm/vllm-openai:v0.11.0", "vllm"), ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.9", "vllm"),
    ("localhost:5000/vllmbench-functions:dev", "vllmbench"), ("registry.io:5000/team/vllm:1", "vllm"),
    ("python:3.12", None), ("ghcr.io/llm-d/llm-d:v1", None),
])
def test_image_families(image, family) -> None:
    assert images.image_family(image) == family


def test_kubernetes_variable_expansion() -> None:
    env = {"HOST": "127.0.0.1", "PORT": "30001"}
    assert podspec.expand("http://$(HOST):$(PORT)/v1", env) == "http://127.0.0.1:30001/v1"
    assert podspec.expand("$$(HOST) $(MISSING)", env) == "$(HOST) $(MISSING)"


def test_service_environment_variables() -> None:
    env = podspec.service_env([("benchmark-results", [("http", 30100), ("metrics", 30101)])])
    assert env["BENCHMARK_RESULTS_SERVICE_HOST"] == "127.0.0.1"
    assert env["BENCHMARK_RESULTS_SERVICE_PORT"] == "30100"
    assert env["BENCHMARK_RESULTS_SERVICE_PORT_METRICS"] == "30101"
    assert env["BENCHMARK_RESULTS_PORT"] == "tcp://127.0.0.1:30100"


@pytest.mark.parametrize(("value", "size"), [("512Mi", 512 * 2**20), ("1G", 10**9), ("1.5Gi", int(1.5 * 2**30)),
                                             (1048576, 2**20), ("bogus", None)])
def test_memory_quantities(value, size) -> None:
    assert podspec.quantity(value) == size
