"""Prompts: synthetic (unique by default), a JSONL file, or a ShareGPT file.

Synthetic prompts are words drawn from a fixed vocabulary; each starts with a word
unique to the run and the request, so no two prompts share a prefix and a prefix
cache cannot flatter the server. Planned lengths count words (the simulator's tokens;
close to tokens on a real model, and the server's ``usage`` is preferred when given).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.harness.lengths import LengthSpec

VOCABULARY = (
    "the of and to in is was for that with on as by at from his her they this are be it an or which "
    "one all were when there can more had some time into other would could them what about many "
    "then these so people only made over new also after first well years year may used between"
).split()


@dataclass(frozen=True, slots=True)
class PromptItem:
    text: str | None
    messages: list[dict[str, Any]] | None
    input_tokens: int
    max_tokens: int


def synthetic(n: int, input_len: LengthSpec, output_len: LengthSpec, *, unique: bool = True, seed: int = 0) -> list[PromptItem]:
    rng = random.Random(seed)
    tag = f"{rng.getrandbits(32):08x}"
    base = [rng.choice(VOCABULARY) for _ in range(input_len.high)]
    items = []
    for i in range(n):
        length = input_len.sample(rng)
        words = base[:length]
        if unique:
            words = [f"u{tag}r{i}"] + words[1:]
        items.append(PromptItem(" ".join(words), None, length, output_len.sample(rng)))
    return items


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ValidationFailed(f"dataset file {path} does not exist or is not a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"dataset file {path} cannot be read: {exc}") from exc


def from_jsonl(path: Path, output_len: LengthSpec, *, seed: int = 0) -> list[PromptItem]:
    """Lines of ``{"prompt": str}`` or ``{"messages": [...]}``, optional ``max_tokens``."""
    rng = random.Random(seed)
    items = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValidationFailed(f"{path}:{number}: not JSON ({exc.args[0]})") from exc
        if not isinstance(row, dict):
            raise ValidationFailed(f"{path}:{number}: each line must be a JSON object")
        text, messages = row.get("prompt", row.get("text")), row.get("messages")
        if not isinstance(text, str) and not isinstance(messages, list):
            raise ValidationFailed(f"{path}:{number}: needs a 'prompt' string or a 'messages' list")
        max_tokens = row.get("max_tokens", row.get("output_tokens")) or output_len.sample(rng)
        words = text if isinstance(text, str) else " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        items.append(PromptItem(text if isinstance(text, str) else None, messages if text is None else None,
                                len(words.split()), int(max_tokens)))
    if not items:
        raise ValidationFailed(f"dataset file {path} has no prompts")
    return items


def from_sharegpt(path: Path, output_len: LengthSpec | None, *, seed: int = 0) -> list[PromptItem]:
    """ShareGPT JSON: a list of ``{"conversations": [{"from": "human", "value": ...}, ...]}``.

    The first human turn is the prompt; the reply that follows sets the output length
    unless an output length is given."""
    if not path.is_file():
        raise ValidationFailed(f"dataset file {path} does not exist or is not a file")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(f"ShareGPT file {path} is not valid JSON: {exc}") from exc
    if not isinstance(rows, list):
        raise ValidationFailed(f"ShareGPT file {path} must hold a JSON list of conversations")
    rng = random.Random(seed)
    items = []
    for row in rows:
        turns = row.get("conversations") if isinstance(row, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, reply = turns[0], turns[1]
        if not (isinstance(first, dict) and isinstance(reply, dict)) or first.get("from") != "human":
            continue
        prompt, answer = str(first.get("value", "")), str(reply.get("value", ""))
        if not prompt.strip():
            continue
        max_tokens = output_len.sample(rng) if output_len else max(1, len(answer.split()))
        items.append(PromptItem(prompt, None, len(prompt.split()), max_tokens))
    if not items:
        raise ValidationFailed(f"ShareGPT file {path} has no usable conversations (human turn then reply)")
    return items


def cycle(items: list[PromptItem], n: int) -> list[PromptItem]:
    """``n`` items, repeating the dataset when it is shorter than the run."""
    return [items[i % len(items)] for i in range(n)]
