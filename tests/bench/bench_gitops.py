"""GitOps sync: a generated repository of 5,000 config files.

Prints the time of the first sync (fresh cache: shallow fetch, every blob read and
parsed, 5,000 documents written), of an incremental sync after one file changed
(fetch, tree diff, one blob, one document), and of an edit through the Manager's
core (validate, commit, push, re-sync), with the ratio incremental / first.
Target: under 5%. Runs in-process against FerretDB (SQLite) on this machine, or the
server at MONGO_URL; the remote is a local bare repository.

    .venv/bin/python tests/bench/bench_gitops.py [--files N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gitops.commit import Author  # noqa: E402
from gitops.editing import edit_file  # noqa: E402
from gitops.mirror import GitOptions, sync_project  # noqa: E402
from gitops.webhook import normalize_repo_url  # noqa: E402
from vllmbench.embedded.ferretdb import FerretDB  # noqa: E402
from vllmbench.embedded.processes import free_port  # noqa: E402
from vllmbench.models.projects import ProjectCreate  # noqa: E402
from vllmbench.store import config_files, projects  # noqa: E402
from vllmbench.store.projects import ProjectStore  # noqa: E402

ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
PROFILE = """name: b{i:05d}
description: generated benchmark profile {i}
model: facebook/opt-125m
load:
  mode: rate
  arrival: poisson
  rate_rps: {rate}
  duration_s: 60
  dataset: synthetic
  input_tokens: {{kind: fixed, mean: 128}}
  output_tokens: {{kind: fixed, mean: 128}}
slo:
  ttft_ms: 200
  tpot_ms: 50
tags: [generated]
"""


def generate(bare: Path, count: int) -> None:
    """A bare repository whose main branch holds ``count`` profiles, built with git fast-import."""
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(bare)], check=True, env=ENV)
    chunks = ["commit refs/heads/main\ncommitter bench <bench@localhost> 1700000000 +0000\n"
              "data 9\ngenerated\n"]
    for i in range(count):
        content = PROFILE.format(i=i, rate=1 + i % 50).encode()
        folder = f"projects/bench/benchmarks/g{i // 500:02d}"
        chunks.append(f"M 100644 inline {folder}/b{i:05d}.yaml\ndata {len(content)}\n")
        chunks.append(content.decode() + "\n")
    chunks.append("M 100644 inline projects/bench/project.yaml\ndata 12\nname: bench\n\n")
    subprocess.run(["git", "--git-dir", str(bare), "fast-import", "--quiet"], input="".join(chunks).encode(),
                   check=True, env=ENV)


def person_commits(bare: Path, work: Path, n: int) -> None:
    """Someone else changes one file and pushes (a plain clone, as a person would)."""
    if not work.exists():
        subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{bare}", str(work)], check=True, env=ENV)
    target = work / "projects/bench/benchmarks/g00/b00007.yaml"
    target.write_text(PROFILE.format(i=7, rate=100 + n))
    for args in (["commit", "-q", "-am", f"person change {n}"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=ENV)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from pymongo import MongoClient

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        external = os.environ.get("MONGO_URL")
        server = None if external else FerretDB(root / "ferretdb", free_port()).start()
        try:
            client: MongoClient = MongoClient(external or server.url, tz_aware=True)
            db = client["bench_gitops"]
            client.drop_database("bench_gitops")
            projects.ensure_indexes(db)
            config_files.ensure_indexes(db)
            bare = root / "config.git"
            started = time.perf_counter()
            generate(bare, args.files)
            print(f"repository: {args.files + 1} files generated in {time.perf_counter() - started:.2f} s; "
                  f"database: {'MONGO_URL' if external else 'FerretDB v1 (SQLite) on this machine'}")
            body = ProjectCreate(name="bench", repository=str(bare), root="projects/bench", credentials="none")
            ProjectStore(db).create(body, repo_key=normalize_repo_url(str(bare)), root="projects/bench")
            options = GitOptions(cache_dir=root / "cache", credentials_dir=root / "creds")

            started = time.perf_counter()
            first = sync_project(db, "bench", options)
            first_s = time.perf_counter() - started
            assert first.counts.files == args.files + 1 and first.counts.invalid == 0, first

            incremental = []
            for n in range(args.repeat):
                person_commits(bare, root / "person", n)
                started = time.perf_counter()
                result = sync_project(db, "bench", options)
                incremental.append(time.perf_counter() - started)
                assert (result.mode, result.counts.modified, result.counts.read) == ("incremental", 1, 1), result

            edits = []
            for n in range(args.repeat):
                content = PROFILE.format(i=11, rate=200 + n).encode()
                started = time.perf_counter()
                written = edit_file(db, "bench", "benchmarks/g00/b00011.yaml", content, if_match=None,
                                    options=options, author=Author("bench", "bench@localhost"))
                edits.append(time.perf_counter() - started)
                assert written.created_commit and written.sync.counts.read == 1

            inc, edit = statistics.median(incremental), statistics.median(edits)
            ratio = inc / first_s
            print(f"first sync      {first_s * 1000:9.1f} ms  ({args.files + 1} files read, parsed, stored)")
            print(f"incremental     {inc * 1000:9.1f} ms  median of {args.repeat} (one file changed; "
                  f"min {min(incremental) * 1000:.1f}, max {max(incremental) * 1000:.1f})")
            print(f"edit            {edit * 1000:9.1f} ms  median of {args.repeat} (validate, commit, push, re-sync)")
            print(f"ratio incremental/first: {ratio * 100:.2f}%  (target < 5%: {'met' if ratio < 0.05 else 'NOT met'})")
            client.close()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
