"""exec: a shell on a pty in the pod's folder with the container's env, only when allowed."""

from __future__ import annotations

import time

import pytest

from vllmbench.errors import Forbidden
from vllmbench.runtimes.local import LocalRuntime

from .conftest import python_job, wait_for


def running_pod(rt: LocalRuntime) -> str:
    manifest = python_job("shell", "import time; time.sleep(60)")
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "GREETING", "value": "hello from env"}]
    rt.apply(manifest, field_manager="m")
    pod = wait_for(lambda: [p for p in rt.pods("t", {"job-name": "shell"})
                            if "running" in p["status"]["containerStatuses"][0]["state"]], what="a running pod")
    return pod[0]["metadata"]["name"]


def read_until(channel, marker: bytes, timeout_s: float = 15.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout_s
    while marker not in out and time.monotonic() < deadline:
        chunk = channel.read(0.2)
        if chunk is None:
            break
        out += chunk
    return out


def test_exec_runs_a_shell_on_a_pty_in_the_pod_folder(root) -> None:
    rt = LocalRuntime(root, exec_enabled=True)
    try:
        pod = running_pod(rt)
        channel = rt.exec("t", pod, command=["/bin/sh"])
        try:
            channel.resize(cols=123, rows=45)
            channel.write(b"echo \"$GREETING|$HOSTNAME|$(pwd)\"; tty; stty size\n")
            out = read_until(channel, b"45 123")
            assert f"hello from env|{pod}|{root / 'pods' / 't' / pod}".encode() in out
            assert b"45 123" in out and b"/dev/pts/" in out
            assert channel.exit_code is None
            channel.write(b"exit 7\n")
            read_until(channel, b"never")
            assert wait_for(lambda: channel.exit_code is not None, what="the shell ended") and channel.exit_code == 7
            assert channel.read(0.1) is None
        finally:
            channel.close()
        sleeper = rt.exec("t", pod, command=["bash"])
        sleeper.write(b"sleep 30\n")
        sleeper.close()  # hangs the shell up, with what it runs
        assert sleeper.exit_code is not None
    finally:
        rt.shutdown()


def test_exec_is_forbidden_unless_the_setting_allows_it(rt: LocalRuntime) -> None:
    pod = running_pod(rt)
    with pytest.raises(Forbidden) as refused:
        rt.exec("t", pod, command=["/bin/sh"])
    assert refused.value.status == 403 and "VLLMBENCH_LOCAL_EXEC" in refused.value.message
