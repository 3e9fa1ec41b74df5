"""A benchmark profile's accuracy section: the lm-eval template's tasks, checked like the rest of the profile."""

from __future__ import annotations

import pytest

from gitops.kinds import problems

LOAD = {"mode": "concurrency", "concurrency": 8}


def test_a_profile_names_its_accuracy_tasks():
    doc = {"load": LOAD, "accuracy": {"tasks": ["gsm8k", "mmlu_pro:math", "my.task-v2"], "num_fewshot": 5,
                                      "limit": 200, "tokenizer_backend": "remote", "concurrency": 16,
                                      "max_gen_toks": 512, "include_path": "/tasks"}}
    assert problems("benchmark", [doc], path="projects/demo/benchmarks/acc.yaml") == []
    assert problems("benchmark", [{"load": LOAD}], path="projects/demo/benchmarks/lat.yaml") == []


@pytest.mark.parametrize("accuracy,where", [
    ({"tasks": []}, ("accuracy", "tasks")),
    ({"tasks": ["gsm8k"], "fewshot": 5}, ("accuracy", "fewshot")),
    ({"tasks": ["gsm 8k"]}, ("accuracy", "tasks")),
    ({"tasks": ["gsm8k"], "tokenizer_backend": "tiktoken"}, ("accuracy", "tokenizer_backend")),
    ({"tasks": ["gsm8k"], "limit": 0}, ("accuracy", "limit")),
    ({"tasks": ["gsm8k"], "concurrency": 0}, ("accuracy", "concurrency")),
])
def test_a_wrong_accuracy_section_names_the_field(accuracy, where):
    found = problems("benchmark", [{"load": LOAD, "accuracy": accuracy}], path="projects/demo/benchmarks/acc.yaml")
    assert [tuple(f["loc"][1:3]) for f in found] == [where], found
