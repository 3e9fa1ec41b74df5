"""Safe YAML parsing with errors that name the file and the line.

Only plain data is built (``SafeLoader``: no Python objects, no tags that run
code). Multi-document files give one entry per document; empty documents (a
trailing ``---``) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from vllmbench.errors import ValidationFailed

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_SUFFIXES = (".yaml", ".yml")


def is_yaml_path(path: str) -> bool:
    return path.lower().endswith(YAML_SUFFIXES)


@dataclass(frozen=True)
class YamlProblem:
    """Where and why a file does not parse. ``line`` and ``column`` count from 1."""

    path: str
    line: int | None
    column: int | None
    problem: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.problem}"

    def to_detail(self) -> dict[str, Any]:
        return {
            "loc": ["body"] if self.line is None else ["body", f"line {self.line}"],
            "msg": str(self),
            "expected": "valid YAML",
        }


class InvalidYaml(ValidationFailed):
    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(f"invalid YAML in {problem}", details=[problem.to_detail()])
        self.problem = problem


def parse_documents(text: str, *, path: str) -> list[Any]:
    """Every non-empty document of ``text``; raises :class:`InvalidYaml` naming ``path`` and line."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise InvalidYaml(_problem(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise InvalidYaml(YamlProblem(path, None, None, str(exc).strip())) from exc
    except (ValueError, RecursionError) as exc:  # e.g. absurd nesting, bad timestamps
        raise InvalidYaml(YamlProblem(path, None, None, f"cannot be loaded: {exc}")) from exc
    return [doc for doc in documents if doc is not None]


def check_documents(text: str, *, path: str) -> tuple[list[Any], YamlProblem | None]:
    """Like :func:`parse_documents` but returns the problem instead of raising (for sync)."""
    try:
        return parse_documents(text, path=path), None
    except InvalidYaml as exc:
        return [], exc.problem


def _problem(path: str, exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    parts = [part for part in (exc.context, exc.problem) if part]
    problem = "; ".join(parts) or "cannot be parsed"
    if mark is None:
        return YamlProblem(path, None, None, problem)
    return YamlProblem(path, mark.line + 1, mark.column + 1, problem)


def documents_with_lines(text: str, *, path: str) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with the line (from 1) where it starts, so that a
    problem found later in a document can still be named as ``path:line``. One parse; the
    errors are those of :func:`parse_documents`."""
    loader = _Loader(text)
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            document = loader.construct_document(node)
            if document is not None:
                found.append((document, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        raise InvalidYaml(_problem(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise InvalidYaml(YamlProblem(path, None, None, str(exc).strip())) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidYaml(YamlProblem(path, None, None, f"cannot be loaded: {exc}")) from exc
    finally:
        loader.dispose()
    return found
