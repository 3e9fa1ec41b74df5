"""Bad input gives one clear line and a non-zero exit, through the real command line."""

import json
import socket
import subprocess
import sys

import pytest

# The `vllmbench` app; while the embedded-stack command is not there yet, the same two commands alone.
LAUNCH = (
    "import importlib.util, sys, typer\n"
    "if importlib.util.find_spec('vllmbench.cli.up'):\n"
    "    from vllmbench.cli import main; sys.argv[0] = 'vllmbench'; main()\n"
    "else:\n"
    "    from vllmbench.cli import run, simulate\n"
    "    app = typer.Typer(); run.register(app); simulate.register(app); app(prog_name='vllmbench')\n"
)


def vllmbench(*args, timeout=60):
    return subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unreachable_url(tmp_path):
    proc = vllmbench("run", "--url", f"http://127.0.0.1:{free_port()}", "--rate", "1", "--requests", "1", "--quiet")
    assert proc.returncode == 2
    assert "cannot reach" in one_error_line(proc)


def test_wrong_model(sim):
    proc = vllmbench("run", "--url", sim.url, "--model", "nope", "--rate", "1", "--requests", "1", "--quiet")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "'nope' is not served" in line and "sim-model" in line


@pytest.mark.parametrize("args,needle", [
    (["--rate", "0"], "positive"),
    (["--rate", "5", "--duration", "2", "--warmup", "3"], "leave nothing"),
    (["--rate", "abc"], "not a number"),
    (["--rate", "5", "--concurrency", "2"], "not both"),
])
def test_impossible_load_settings(sim, args, needle):
    proc = vllmbench("run", "--url", sim.url, "--quiet", *args)
    assert proc.returncode == 2
    assert needle in one_error_line(proc)


def test_missing_and_malformed_datasets(sim, tmp_path):
    proc = vllmbench("run", "--url", sim.url, "--rate", "1", "--requests", "1", "--quiet",
                     "--dataset", "jsonl", "--dataset-path", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "does not exist" in one_error_line(proc)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{not json\n')
    proc = vllmbench("run", "--url", sim.url, "--rate", "1", "--requests", "1", "--quiet",
                     "--dataset", "jsonl", "--dataset-path", str(bad))
    assert proc.returncode == 2 and "bad.jsonl:2: not JSON" in one_error_line(proc)


def test_a_good_run_writes_its_files(sim, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"hello world {i}", "max_tokens": 3}) for i in range(3)))
    proc = vllmbench("run", "--url", sim.url, "--rate", "20", "--requests", "6", "--quiet", "--dataset", "jsonl",
                     "--dataset-path", str(prompts), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "event loop late p50/p99/max" in proc.stdout
    lines = (tmp_path / "out" / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["output_tokens"] == 3
    [record] = json.loads((tmp_path / "out" / "records.json").read_text())
    assert record["results"]["requests"]["succeeded"] == 6


def test_strict_exits_3_when_a_stage_cannot_be_trusted(sim):
    """One request in flight at a time against 20 requests/s of 100 ms each: they wait for the
    cap, which the run reports and --strict turns into exit 3 (whatever the machine's load)."""
    proc = vllmbench("run", "--url", sim.url, "--rate", "20", "--requests", "6", "--quiet", "--input-len", "4",
                     "--output-len", "16", "--max-in-flight", "1", "--strict")
    assert proc.returncode == 3, proc.stderr
    assert "waited for the in-flight cap of 1" in proc.stdout
    assert "untrustworthy" in one_error_line(proc)
