"""Following the registry: new versions by a per-model cursor, alias moves, changes in place.

A poll is a list of small steps per followed registered model:

1. new versions: ``version_number > cursor``, lowest first. The cursor passes a version
   once it is settled (READY or FAILED; a PENDING one stops it) and its files are in
   Git, so a poll that fails half-way starts again where it stopped;
2. (full polls) every version again: tags, stages and descriptions change in place
   and MLflow moves no timestamp for tags;
3. aliases: read from the registered model each time; a move rewrites the alias files.

Each version is read completely (the version with its aliases, its run) before
anything is written for it, and written with one commit, then recorded: MLflow or
Git going down mid-way leaves every version either done or untouched. What decides a
write is what we last wrote (blob shas in the store), not what Git holds: a person's
edit of a generated file stays until the version changes in MLflow.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitops.changes import blob_sha
from vllmbench.errors import UserError
from vllmbench.logs import get_logger, info
from vllmbench.mlflow import names, records, render
from vllmbench.mlflow.client import VERSION_PAGE, MlflowClient, quote_name
from vllmbench.mlflow.repository import ConfigRepository
from vllmbench.mlflow.rules import LoadedRule, RuleSet, like_prefix, selects
from vllmbench.models.mlflow import ModelVersionRecord, RegisteredModelRecord, VersionRegistered
from vllmbench.store.mlflow import MlflowStore

log = get_logger("vllmbench.mlflow")
VERSION_REGISTERED = "dev.vllmbench.model.version.registered"
GITOPS_PUSHED = "dev.vllmbench.gitops.pushed"
LABEL_MODEL = "vllmbench.dev/mlflow-model"
LABEL_VERSION = "vllmbench.dev/mlflow-version"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Outcome:
    """What one poll did, for the caller and for GET /connections."""

    trigger: str
    full: bool = False
    models: list[str] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False
    read: int = 0
    cycle: str | None = None  # the full pass this poll is part of

    def as_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "full": self.full, "models": self.models, "written": self.written,
                "commits": len(self.written), "unchanged": self.unchanged, "skipped": self.skipped[:50],
                "refused": self.refused, "errors": self.errors, "more": self.more, "versions_read": self.read}


@dataclass
class Poller:
    client: MlflowClient
    store: MlflowStore
    repo: ConfigRepository
    emit: Callable[..., bool] = lambda *args, **kwargs: False
    max_writes: int = 20
    max_reads: int = 500  # versions read per poll: a request stays short however long the history

    def _budget_left(self, outcome: Outcome) -> bool:
        if len(outcome.written) >= self.max_writes or outcome.read >= self.max_reads:
            outcome.more = True
            return False
        return True

    # -- the poll --------------------------------------------------------------------------
    def poll(self, *, trigger: str, model: str | None = None, versions: tuple[int, ...] = (), full: bool = False,
             resync_s: int = 3600, wait_s: float = 0) -> dict[str, Any]:
        holder = uuid.uuid4().hex
        self.store.acquire(holder, wait_s=wait_s)
        started = time.perf_counter()
        try:
            status = self.store.status()
            rules = self.repo.rules()
            last_full = status.get("last_full_at")
            due = last_full is None or (_now() - dt.datetime.fromisoformat(last_full)).total_seconds() > resync_s
            # A full pass may take several polls (the budgets): its cycle goes on where it stopped.
            cycle = status.get("full_cycle")
            if full or (cycle is None and (rules.fingerprint != status.get("rules_fingerprint") or
                                           (model is None and due))):
                cycle = _now().isoformat()
                self.store.update_status(full_cycle=cycle)
            full = cycle is not None
            outcome = Outcome(trigger, full=full, cycle=cycle)
            try:
                self._poll(rules, outcome, only=model, versions=versions)
            except Exception as exc:
                message = getattr(exc, "message", str(exc))
                self.store.update_status(last_error={"at": _now(), "message": message, "trigger": trigger},
                                         last_poll={"at": _now(), "trigger": trigger, "ok": False,
                                                    "commits": len(outcome.written)})
                raise
            changes: dict[str, Any] = {
                "last_poll": {"at": _now(), "trigger": trigger, "ok": True, "full": full,
                              "commits": len(outcome.written), "errors": len(outcome.errors),
                              "ms": round((time.perf_counter() - started) * 1000, 1)},
                "rules": {"commit": rules.commit, "count": len(rules.rules), "paths": [r.path for r in rules.rules],
                          "problems": rules.problems[:50]}}
            if model is None:
                changes["last_success_at"] = _now()
                if full and not outcome.more and not outcome.errors:
                    changes.update(last_full_at=_now(), rules_fingerprint=rules.fingerprint, full_cycle=None)
            if outcome.errors:
                changes["last_error"] = {"at": _now(), "message": outcome.errors[0]["message"], "trigger": trigger}
            self.store.update_status(**changes)
            info(log, "polled MLflow", trigger=trigger, full=full, models=len(outcome.models),
                 commits=len(outcome.written), errors=len(outcome.errors))
            return outcome.as_dict()
        finally:
            self.store.release(holder)

    def _poll(self, rules: RuleSet, outcome: Outcome, *, only: str | None, versions: tuple[int, ...]) -> None:
        for registered in self._followed(rules, only):
            if not self._budget_left(outcome):
                return
            loaded = rules.for_model(registered["name"])
            if loaded is None:
                continue
            outcome.models.append(registered["name"])
            try:
                self._model(loaded, registered, outcome, versions=versions)
            except UserError as exc:  # Conflict, ValidationFailed, NameRefused, ...
                # A person's edit raced ours, or a version we cannot write: the others go on,
                # and the cursor waits at this version for the next poll.
                outcome.errors.append({"model": registered["name"], "message": exc.message})
                log.warning("MLflow model %s: %s", registered["name"], exc.message)

    def _followed(self, rules: RuleSet, only: str | None) -> list[dict[str, Any]]:
        """The registered models some rule follows, as MLflow describes them (with aliases)."""
        if only is not None:
            found = self.client.get_model(only)
            return [found] if found and rules.for_model(only) else []
        models: dict[str, dict[str, Any]] = {}
        for name in rules.exact_names():
            found = self.client.get_model(name)
            if found:
                models[name] = found
        for prefix in sorted({like_prefix(p) for p in rules.patterns()}):
            for found in self.client.search_models(None if prefix == "%" else prefix):
                if rules.for_model(found["name"]):
                    models[found["name"]] = found
        return [models[name] for name in sorted(models)]

    # -- one registered model ------------------------------------------------------------------
    def _model(self, loaded: LoadedRule, registered: dict[str, Any], outcome: Outcome, *,
               versions: tuple[int, ...]) -> None:
        name = registered["name"]
        model = self.store.model(name) or RegisteredModelRecord(name=name)
        model.rules, model.seen_at = [loaded.path], _now()
        model.description, model.tags = registered.get("description") or "", records.user_tags(
            {t["key"]: t.get("value", "") for t in registered.get("tags") or []})
        refusal = self._refusal(name)
        model.k8s_name, model.refused = (None, refusal) if refusal else (names.model_part(name), None)
        if refusal:
            self.store.save_model(model)
            outcome.refused.append({"model": name, "reason": refusal})
            return
        self.store.save_model(model)  # followed from now on, before its first version is written
        aliases = records.model_aliases(registered)
        # 1. new versions, by the cursor
        fresh: set[int] = set()
        while self._budget_left(outcome):
            page = self.client.versions_after(name, model.cursor)
            for version in page:
                if not records.settled(version):
                    page = []  # a PENDING registration: the cursor waits here
                    break
                self._version(loaded, name, int(version["version"]), outcome, aliases=aliases)
                model.cursor = int(version["version"])
                fresh.add(model.cursor)
                self.store.save_model(model)
                if not self._budget_left(outcome):
                    return
            if len(page) < VERSION_PAGE:
                break
        # 2. versions changed in place: all of them on a full pass (from where it stopped), else
        #    the ones named (webhooks) and those an alias left or reached
        again = set(versions)
        start = model.resynced_to if model.resync_cycle == outcome.cycle else 0
        if outcome.full:
            again |= {n for n in self.store.version_numbers(name) if n > start and n not in fresh}
        moved = {a for a in set(aliases) | set(model.aliases) if aliases.get(a) != model.aliases.get(a)}
        again |= {v for a in moved for v in (aliases.get(a), model.aliases.get(a)) if v is not None}
        for number in sorted(n for n in again if n <= model.cursor):
            if not self._budget_left(outcome):
                return
            self._version(loaded, name, number, outcome, aliases=aliases)
            if outcome.full and number > start:
                model.resynced_to, model.resync_cycle = number, outcome.cycle
                self.store.save_model(model)
        if outcome.full:
            model.resynced_to, model.resync_cycle = model.cursor, outcome.cycle
        # 3. the alias files
        self._aliases(loaded, name, aliases, outcome)
        model.aliases = aliases
        self.store.save_model(model)

    def _refusal(self, name: str) -> str | None:
        try:
            quote_name(name)
            k8s = names.model_part(name)
        except UserError as exc:
            return exc.message
        other = self.store.model_for_k8s_name(k8s)
        if other is not None and other != name:
            return f"its Kubernetes name {k8s!r} is taken by the registered model {other!r}"
        return None

    # -- one version ---------------------------------------------------------------------------
    def _read(self, name: str, number: int, outcome: Outcome) -> ModelVersionRecord | None:
        outcome.read += 1
        found = self.client.get_version(name, number)
        if found is None:
            return None
        run = self.client.get_run(found["run_id"]) if found.get("run_id") else None
        return records.version_record(found, run)

    def _version(self, loaded: LoadedRule, name: str, number: int, outcome: Outcome, *,
                 aliases: dict[str, int]) -> None:
        record = self._read(name, number, outcome)
        if record is None:  # deleted meanwhile
            return
        previous = self.store.version(name, number)
        if previous is not None:
            for kept in ("files", "commit", "written_at", "writeback", "server", "benchmark"):
                setattr(record, kept, getattr(previous, kept))
        record.rules, record.seen_at = [loaded.path], _now()
        why_not = selects(loaded, record)
        record.skipped = why_not
        if why_not:
            record.refused = None
            self.store.save_version(record)
            outcome.skipped.append({"model": name, "version": number, "reason": why_not})
            return
        try:
            files, server = self._files(loaded, record)
        except UserError as exc:  # the schema, a template, a name: recorded, and the cursor goes on
            record.refused = exc.message
            self.store.save_version(record)
            outcome.refused.append({"model": name, "version": number, "reason": exc.message})
            return
        record.refused = None
        changed = {path: content for path, content in files.items() if record.files.get(path) != blob_sha(content)}
        if not changed:
            self.store.save_version(record)
            outcome.unchanged += 1
            return
        first = render.version_path(loaded.rule.namespace, name, number) not in record.files
        verb = "as" if first else "changed in MLflow: rewrite"
        run = f" (run {record.run_id})" if record.run_id else ""
        result = self._commit(changed, message=f"MLflow: {name} version {number}{run} {verb} ModelServer {server}")
        record.files = {**record.files, **{path: blob_sha(content) for path, content in changed.items()}}
        record.commit, record.written_at, record.server = result.commit, _now(), server
        record.benchmark = self._benchmark(loaded, record, aliases)
        self.store.save_version(record)
        outcome.written.append({"model": name, "version": number, "commit": result.commit,
                                "files": sorted(changed), "created": result.created})
        if first:
            self._announce(loaded, record)

    def _files(self, loaded: LoadedRule, record: ModelVersionRecord) -> tuple[dict[str, bytes], str]:
        path, content, document = render.server_file(loaded, record)
        files = {path: content}
        if loaded.rule.helm_values:
            values, text = render.values_file(loaded, record, document)
            files[values] = text
        return files, f"{document['namespace']}/{document['name']}"

    def _benchmark(self, loaded: LoadedRule, record: ModelVersionRecord, aliases: dict[str, int]) -> dict[str, Any] | None:
        wanted = loaded.rule.benchmark
        if wanted is None or not wanted.enabled:
            return None
        baseline: str | None = None
        namespace = loaded.rule.namespace
        if wanted.baseline == "previous":
            older = [v for v in self.store.versions(record.model, limit=20, before=record.version) if v.server]
            baseline = older[0].server if older else None
        elif wanted.baseline.startswith("alias:"):
            alias = wanted.baseline[len("alias:"):]
            if alias in loaded.rule.follow_aliases:
                baseline = f"{namespace}/{names.alias_server(record.model, alias)}"
            elif alias in aliases:
                holder = self.store.version(record.model, aliases[alias])
                baseline = holder.server if holder else None
        elif wanted.baseline.startswith("version:"):
            holder = self.store.version(record.model, int(wanted.baseline[len("version:"):]))
            baseline = holder.server if holder else None
        return {"project": loaded.benchmark_project, "profile": wanted.profile, "template": wanted.template,
                "baseline": wanted.baseline, "baseline_server": baseline, "promote_alias": wanted.promote_alias,
                "labels": {LABEL_MODEL: record.model, LABEL_VERSION: str(record.version)}}

    def _commit(self, files: dict[str, bytes], *, message: str) -> Any:
        """One commit; a new one is announced as writers do, so that the Manager, the deployer
        and the vLLM service (which places new ModelServers) sync now rather than on their tick."""
        result = self.repo.write(files, message=message)
        if result.created:
            branch = self.repo.repo.branch
            self.emit(GITOPS_PUSHED, {"repository": self.repo.url or self.repo.public, "aliases": [],
                                      "branch": branch, "before": result.previous, "after": result.commit},
                      subject=branch, id=f"mlflow-{result.commit}")
        return result

    def _announce(self, loaded: LoadedRule, record: ModelVersionRecord) -> None:
        path = render.version_path(loaded.rule.namespace, record.model, record.version)
        data = VersionRegistered(model=record.model, version=record.version, source=record.source,
                                 run_id=record.run_id, server=record.server or "", path=path,
                                 commit=record.commit or "", rule=loaded.path, benchmark=record.benchmark)
        # The id is the version's: a replay after a crash is the same event to its consumers.
        self.emit(VERSION_REGISTERED, data.model_dump(mode="json"), subject=record.server,
                  id=f"{record.model}:v{record.version}")

    # -- alias files --------------------------------------------------------------------------
    def _aliases(self, loaded: LoadedRule, name: str, aliases: dict[str, int], outcome: Outcome) -> None:
        written = self.store.alias_files(name)
        for alias in loaded.rule.follow_aliases:
            holder = aliases.get(alias)
            if holder is None or not self._budget_left(outcome):
                continue
            record = self.store.version(name, holder)
            if record is None or record.status != "READY":
                continue
            try:
                path, content, document = render.server_file(loaded, record, alias=alias)
            except UserError as exc:
                outcome.refused.append({"model": name, "alias": alias, "reason": exc.message})
                continue
            if written.get(path) == blob_sha(content):
                continue
            server = f"{document['namespace']}/{document['name']}"
            result = self._commit({path: content}, message=f"MLflow: alias {alias} of {name} is on version "
                                                           f"{holder}: ModelServer {server}")
            written[path] = blob_sha(content)
            self.store.save_model(self.store.model(name) or RegisteredModelRecord(name=name), alias_files=written)
            outcome.written.append({"model": name, "version": holder, "alias": alias, "commit": result.commit,
                                    "files": [path], "created": result.created})
