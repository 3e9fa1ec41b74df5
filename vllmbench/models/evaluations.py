"""Evaluations (port 8004): the request, schedules in Git, what the API answers."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from vllmbench.models.base import Strict

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SERVER = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
TEMPLATE = r"^(builtin:)?[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
EVAL_ID = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Harness = Literal["vllmbench", "guidellm", "vllm-bench-serve", "lm-eval"]


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an http:// or https:// URL of an OpenAI-compatible server")
    if any(ch in value for ch in "\r\n\t \x00"):
        raise ValueError("must not contain spaces or control characters")
    return value


class EvaluateRequest(Strict):
    """``POST /evaluate``: ours, or the original body ``{model_name, "vllm-url"}``."""

    project: str | None = Field(None, pattern=SLUG, description="Default: VLLMBENCH_EVAL_DEFAULT_PROJECT.")
    benchmark: str | None = Field(None, pattern=SLUG, description="A profile of the project (benchmarks/<name>.yaml).")
    server: str | None = Field(None, pattern=SERVER, description="A ModelServer in Git, as <namespace>/<name>.")
    target_url: str | None = Field(None, max_length=500, description="An already running server instead.")
    model_name: str | None = Field(None, max_length=300, description="The served model name (with target_url).")
    vllm_url: str | None = Field(None, max_length=500, validation_alias=AliasChoices("vllm-url", "vllm_url"),
                                 description="The original service's name for target_url.")
    template: str | None = Field(None, pattern=TEMPLATE,
                                 description="A project template (templates/<name>.yaml) or builtin:<harness>.")
    harness: Harness | None = Field(None, description="The built-in template of this harness (default vllmbench).")
    repeat: int = Field(1, ge=1, le=20)
    at: dt.datetime | None = Field(None, description="Start at this time (default now).")
    delay_minutes: float | None = Field(None, ge=0, le=7 * 24 * 60,
                                        description="Start after this many minutes (the original's delay).")
    baseline: str | None = Field(None, max_length=200, pattern=r"^(last|none|server:[a-z0-9-]+/[a-z0-9.-]+|[a-z0-9-]+)$",
                                 description="An evaluation id, 'last' (the last passing one of this profile and "
                                             "server, the default), 'server:<namespace>/<name>' (the last passing "
                                             "one of this profile on that server: a model's previous version) "
                                             "or 'none'.")
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600, description="Default: 2 h after the start.")
    name: str | None = Field(None, pattern=EVAL_ID, description="The evaluation's id (default: generated).")

    @field_validator("target_url", "vllm_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _url(value)

    @model_validator(mode="after")
    def _consistent(self) -> "EvaluateRequest":
        if self.vllm_url and self.target_url and self.vllm_url != self.target_url:
            raise ValueError("give target_url or vllm-url, not both")
        if self.server and (self.target_url or self.vllm_url):
            raise ValueError("give a server (a ModelServer in Git) or a target_url, not both")
        if self.template and self.harness:
            raise ValueError("give a template or a harness (its built-in template), not both")
        if self.at and self.delay_minutes is not None:
            raise ValueError("give at or delay_minutes, not both")
        for key, value in self.labels.items():
            if not key or len(key) > 63 or len(value) > 200:
                raise ValueError("labels: keys 1-63 characters, values at most 200")
        return self

    @property
    def url(self) -> str | None:
        return self.target_url or self.vllm_url


ConcurrencyPolicy = Literal["Forbid", "Allow", "Replace"]


class ScheduleSpec(Strict):
    """``schedules/<name>.yaml``: an evaluation on a cron schedule."""

    name: str | None = Field(None, pattern=SLUG, description="Defaults to the file name.")
    description: str = Field("", max_length=2000)
    project: str = Field(pattern=SLUG)
    benchmark: str = Field(pattern=SLUG)
    server: str | None = Field(None, pattern=SERVER, description="Default: the profile's server.")
    target_url: str | None = Field(None, max_length=500)
    model_name: str | None = Field(None, max_length=300)
    template: str | None = Field(None, pattern=TEMPLATE)
    harness: Harness | None = None
    schedule: str = Field(max_length=200, description="Cron, five fields (minute hour day month weekday).")
    timezone: str = Field("Etc/UTC", max_length=64)
    repeat: int = Field(1, ge=1, le=20)
    enabled: bool = True
    concurrency_policy: ConcurrencyPolicy = Field("Forbid", description="As a CronJob's: Forbid, Allow or Replace.")
    baseline: str | None = Field(None, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        fields = value.split()
        if len(fields) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression (minute hour day month weekday), "
                             "e.g. '0 2 * * *' for 02:00 every day")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. Etc/UTC or Europe/Berlin") from None
        return value

    @field_validator("target_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _url(value)


class EvaluationQuery(Strict):
    project: str | None = Field(None, pattern=SLUG)
    state: Literal["scheduled", "waiting", "running", "collecting", "done", "failed", "timed_out", "cancelled"] | None = None
    schedule: str | None = Field(None, pattern=SLUG)
    verdict: Literal["better", "same", "worse", "no_baseline", "untrustworthy"] | None = None
    limit: int = Field(50, ge=1, le=500)
    before: dt.datetime | None = Field(None, description="Page: evaluations created before this time.")


class CancelBody(Strict):
    reason: str = Field("cancelled by a user", max_length=500)
