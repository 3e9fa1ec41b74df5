"""The example desired state the embedded stack starts with.

``vllmbench up`` calls :func:`ensure_seeded` with the path of the local bare
repository that stands in for GitHub; the files come from ``gitops/seed/``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import git

from gitops.commit import Author

SEED_DIR = Path(__file__).parent / "seed"
SEED_MESSAGE = "Seed the example project 'demo'"


def seed_files() -> dict[str, bytes]:
    """Repository path -> content of every seed file."""
    return {path.relative_to(SEED_DIR).as_posix(): path.read_bytes()
            for path in sorted(SEED_DIR.rglob("*")) if path.is_file()}


def ensure_seeded(bare_repo_path: Path, *, author: Author | None = None, branch: str = "main") -> str:
    """Create the bare repository with one commit of the seed files, unless it has ``branch``.

    Idempotent: an existing branch is left as it is. Returns the branch's head commit.
    """
    bare_repo_path = Path(bare_repo_path)
    author = author or Author()
    bare_repo_path.parent.mkdir(parents=True, exist_ok=True)
    if not (bare_repo_path / "HEAD").exists():
        git.Repo.init(bare_repo_path, bare=True, initial_branch=branch).close()
    repo = git.Repo(bare_repo_path)
    try:
        with contextlib.suppress(git.GitCommandError):
            return repo.git.rev_parse("--verify", f"refs/heads/{branch}^{{commit}}")
        fd, index_path = tempfile.mkstemp(prefix="seed-index-", dir=bare_repo_path)
        os.close(fd)
        os.unlink(index_path)
        env = {"GIT_INDEX_FILE": index_path, "GIT_AUTHOR_NAME": author.name,
               "GIT_AUTHOR_EMAIL": author.email, "GIT_COMMITTER_NAME": author.name,
               "GIT_COMMITTER_EMAIL": author.email}
        try:
            for path, content in seed_files().items():
                with tempfile.TemporaryFile() as stdin:
                    stdin.write(content)
                    stdin.seek(0)
                    sha = repo.git.hash_object("-w", "--stdin", istream=stdin)
                repo.git.update_index("--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
            tree = repo.git.write_tree(env=env)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(index_path)
        commit = repo.git.commit_tree(tree, "-m", SEED_MESSAGE, env=env)
        # Only creates the branch: fails (instead of overwriting) if it appeared meanwhile.
        repo.git.update_ref(f"refs/heads/{branch}", commit, "0" * 40)
        return commit
    finally:
        repo.close()
