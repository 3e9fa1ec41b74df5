"""Which containers this machine can run, and as what.

- An image whose name contains ``vllmbench`` runs the installed ``vllmbench`` (the console
  script beside this Python) with the container's command and args: ``vllmbench ...`` or
  args alone; ``python``/``python3`` run this Python.
- A vLLM image (``vllm/vllm-openai`` and the like: a path part starting with ``vllm``) runs
  ``vllm serve`` with the container's args when vLLM is installed here, otherwise
  ``vllmbench simulate`` with the flags it understands (the model, ``--served-model-name``,
  ``--port``, ``--max-num-seqs``, ``--max-model-len``); the rest is ignored and said so.
- Every other image is not run: a host has no image of it, and running another image's
  command on the host would be running arbitrary programs outside any container.

``sh -c "<one simple command>"`` is read as that command; a shell line with pipes,
redirections or several commands is not run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

VLLM_MODULES = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")
SHELLS = {"sh", "bash", "dash", "ash"}
SHELL_SYNTAX = set(";|&<>`$(){}*?\n")
# vLLM flags the simulator understands, to its own flag.
SIM_FLAGS = {"--max-num-seqs": "--max-num-seqs", "--max-model-len": "--max-model-len"}
VLLM_DEFAULT_PORT = 8000
_K8S_VAR = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_.-]*\)")

NOT_RUNNABLE = ("the local runtime runs vllmbench images (the installed vllmbench) and vLLM images (vllm serve, or "
                "the vllmbench simulator when vLLM is not installed); run it on a cluster instead (set KUBECONFIG)")


@dataclass
class Program:
    """What a container becomes on this machine."""

    argv: list[str]
    runs_as: str  # "vllmbench", "vllm" or "simulator"
    listen_port: int | None = None  # the container port the program was told to listen on
    ignored: list[str] = field(default_factory=list)  # vLLM flags the simulator does not know


def vllmbench_argv() -> list[str]:
    script = Path(sys.executable).parent / "vllmbench"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from vllmbench.cli import main; sys.argv[0] = 'vllmbench'; main()"]


def vllm_binary() -> str | None:
    beside = Path(sys.executable).parent / "vllm"
    return str(beside) if beside.exists() else shutil.which("vllm")


def image_family(image: str) -> str | None:
    """'vllmbench', 'vllm' or None for an image name (registry and tag ignored)."""
    name = image.lower().rsplit("@", 1)[0]
    if "vllmbench" in name:
        return "vllmbench"
    path = name.split("/")
    if len(path) > 1 and ("." in path[0] or ":" in path[0] or path[0] == "localhost"):
        path = path[1:]  # a registry host
    path[-1] = path[-1].split(":", 1)[0]
    return "vllm" if any(part.startswith("vllm") for part in path) else None


def _base(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _unshell(words: list[str]) -> list[str] | str:
    """``sh -c "cmd args"`` as ``[cmd, args]`` when the line is one simple command."""
    if len(words) >= 3 and _base(words[0]) in SHELLS and words[1] == "-c":
        line = words[2]
        # $(VAR) is Kubernetes' own expansion, done before a shell would see the line.
        if SHELL_SYNTAX & set(_K8S_VAR.sub("x", line)):
            return f"the shell line {line!r} is not one simple command"
        split = shlex.split(line)
        return split[1:] if split and split[0] == "exec" else split
    return words


def program(image: str, command: list[str] | None, args: list[str] | None, *,
            ports: list[int]) -> Program | str:
    """The program for a container, or a sentence saying why it cannot run here."""
    family = image_family(image)
    if family is None:
        return f"image {image!r} is not runnable locally: {NOT_RUNNABLE}"
    words = _unshell(list(command or []) + list(args or []) if command else list(args or []))
    if isinstance(words, str):
        return f"{words}: {NOT_RUNNABLE}"
    if family == "vllmbench":
        return _vllmbench(image, words, has_command=bool(command), ports=ports)
    return _vllm(image, words, has_command=bool(command))


def _vllmbench(image: str, words: list[str], *, has_command: bool, ports: list[int]) -> Program | str:
    if not words:
        return (f"image {image!r} with no command or args: the local runtime does not know the image's own "
                "entrypoint; give args (e.g. ['run', '--url', ...]) or a command starting with vllmbench or python")
    if not has_command:
        argv = vllmbench_argv() + words
    elif _base(words[0]) == "vllmbench":
        argv = vllmbench_argv() + words[1:]
    elif _base(words[0]).startswith("python"):
        argv = [sys.executable] + words[1:]
    else:
        return f"command {words[0]!r} of image {image!r} is not vllmbench or python: {NOT_RUNNABLE}"
    listen = _flag_value(argv, "--port")
    port = int(listen) if listen and listen.isdigit() and int(listen) in ports else None
    return Program(argv, "vllmbench", listen_port=port)


def _vllm(image: str, words: list[str], *, has_command: bool) -> Program | str:
    rest = words
    if has_command:
        if len(words) >= 2 and _base(words[0]) == "vllm" and words[1] == "serve":
            rest = words[2:]
        elif len(words) >= 3 and _base(words[0]).startswith("python") and words[1] == "-m" and words[2] in VLLM_MODULES:
            rest = words[3:]
        else:
            return f"command {' '.join(words[:2])!r} of vLLM image {image!r} is not vllm serve: {NOT_RUNNABLE}"
    parsed = _parse_vllm(rest)
    port = parsed.port or VLLM_DEFAULT_PORT
    binary = vllm_binary()
    if binary:
        argv = [binary, "serve", *parsed.kept, "--host", "127.0.0.1", "--port", str(port)]
        return Program(argv, "vllm", listen_port=port)
    if not parsed.model:
        return f"vLLM image {image!r} names no model (give one positionally or with --model)"
    argv = vllmbench_argv() + ["simulate", "--host", "127.0.0.1", "--port", str(port)]
    for name in parsed.served or [parsed.model]:
        argv += ["--model", name]
    argv += parsed.sim_flags
    return Program(argv, "simulator", listen_port=port, ignored=parsed.ignored)


@dataclass
class _VllmArgs:
    model: str | None = None
    served: list[str] = field(default_factory=list)
    port: int | None = None
    sim_flags: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # for a real vllm serve: every arg but --host and --port


def _parse_vllm(words: list[str]) -> _VllmArgs:
    out = _VllmArgs()
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, inline = word.partition("=")
        if not word.startswith("-"):
            if out.model is None:
                out.model = word
            else:
                out.ignored.append(word)
            out.kept.append(word)
            i += 1
            continue
        values = [inline] if eq else []
        j = i + 1
        if not eq:
            while j < len(words) and not words[j].startswith("-"):
                values.append(words[j])
                j += 1
                if flag != "--served-model-name":
                    break
        i = j
        if flag not in ("--host", "--port"):
            out.kept += [word] if eq else [word, *values]
        if flag == "--model" and values:
            out.model = values[0]
        elif flag == "--served-model-name":
            out.served = values
        elif flag == "--port" and values and values[0].isdigit():
            out.port = int(values[0])
        elif flag == "--host":
            pass  # always loopback here
        elif flag in SIM_FLAGS and values and values[0].isdigit():
            out.sim_flags += [SIM_FLAGS[flag], values[0]]
        else:
            out.ignored.append(" ".join([word, *values]) if not eq else word)
    return out


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.partition("=")[2]
    return None


def replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value set to ``value`` (both ``--flag v`` and ``--flag=v``)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word == flag and i + 1 < len(out):
            out[i + 1] = value
        elif word.startswith(flag + "="):
            out[i] = f"{flag}={value}"
    return out
