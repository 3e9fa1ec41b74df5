"""The verdict back in MLflow: tags on the evaluated version, and the rule's alias moved.

The evaluated version is found by the labels the MLflow service put on the request
(``vllmbench.dev/mlflow-model``, ``vllmbench.dev/mlflow-version``), else by the
ModelServer evaluated (``<namespace>/<name>``) among those it wrote. An evaluation of
anything else is acknowledged and left alone. Setting a tag or an alias is idempotent
in MLflow, so a redelivered event changes nothing more; MLflow being down is a 503 and
the broker delivers again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from vllmbench.logs import get_logger, info
from vllmbench.mlflow import records, verdicts
from vllmbench.mlflow.client import MlflowClient
from vllmbench.mlflow.poll import LABEL_MODEL, LABEL_VERSION
from vllmbench.models.mlflow import EvalCompleted, ModelVersionRecord
from vllmbench.store.mlflow import MlflowStore

log = get_logger("vllmbench.mlflow")


def find_version(store: MlflowStore, event: EvalCompleted) -> ModelVersionRecord | None:
    model, version = event.labels.get(LABEL_MODEL), event.labels.get(LABEL_VERSION)
    if model and version and version.isdigit():
        found = store.version(model, int(version))
        if found is not None:
            return found
    return store.version_of_server(event.server) if event.server else None


def write_back(connect: Callable[[], MlflowClient], store: MlflowStore, event: EvalCompleted, *,
               eval_url: str | None = None, results_url: str | None = None) -> dict[str, Any]:
    """Tags (and the alias) for the evaluated version; ``eval_url`` and ``results_url`` make the links.
    ``connect`` gives the MLflow client, asked only for a version this service wrote: an evaluation
    of anything else is acknowledged even where no MLflow is configured."""
    record = find_version(store, event)
    if record is None:
        return {"ignored": f"evaluation {event.evaluation} is not of a model version this service wrote "
                           f"(server {event.server!r}, labels {sorted(event.labels)})"}
    client = connect()
    tags = verdicts.verdict_tags(event, eval_url=eval_url, results_url=results_url)
    # One tag per call (MLflow has no batch for version tags). vllmbench.verdict goes last, after
    # the figures and the alias: a reader who sees it sees the whole write-back.
    verdict_key = f"{verdicts.PREFIX}verdict"
    for key, value in tags.items():
        if key != verdict_key:
            client.set_version_tag(record.model, record.version, key, value)
    alias = (record.benchmark or {}).get("promote_alias")
    registered = client.get_model(record.model) or {}
    holder = records.model_aliases(registered).get(alias) if alias else None
    why_not = verdicts.promotion(event, alias=alias, version=record.version, holder=holder)
    if why_not is None and alias:
        client.set_alias(record.model, alias, record.version)
    client.set_version_tag(record.model, record.version, verdict_key, tags[verdict_key])
    record.writeback = {"evaluation": event.evaluation, "verdict": verdicts.verdict_word(event),
                        "tags": len(tags), "alias": alias if why_not is None else None,
                        "alias_not_moved": why_not if alias else None,
                        "at": dt.datetime.now(dt.timezone.utc).isoformat()}
    store.save_version(record)
    info(log, "verdict written to MLflow", model=record.model, version=record.version,
         verdict=record.writeback["verdict"], evaluation=event.evaluation)
    return {"model": record.model, "version": record.version, "tags": sorted(tags),
            "alias": record.writeback["alias"], "alias_not_moved": record.writeback["alias_not_moved"]}
