"""Per-process state of a function, built on first use: settings, store, start hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vllmbench import logs
from vllmbench.settings import Settings, load_settings
from vllmbench.store.mongo import MongoStore

if TYPE_CHECKING:
    from pymongo.database import Database

    from vllmbench.web.context import Context


class Runtime:
    def __init__(self, name: str, service: str, settings: Settings,
                 start_hooks: list[Callable[["Context"], None]]) -> None:
        self.name = name
        self.service = service
        self.source = f"/vllmbench/{service}"
        self.settings = settings
        password = settings.mongo_password.get_secret_value() if settings.mongo_password else None
        self.store = MongoStore(settings.mongo_url.get_secret_value(), timeout_ms=settings.mongo_timeout_ms,
                                app_name=service, username=settings.mongo_username or None, password=password,
                                auth_source=settings.mongo_auth_source)
        self._start_hooks = start_hooks
        self._started = False
        self._lock = threading.Lock()
        self._starter: int | None = None
        self._resources: dict[str, Any] = {}
        self._resource_lock = threading.Lock()

    @classmethod
    def build(cls, name: str, service: str, start_hooks: list[Callable[["Context"], None]],
              settings: Settings | None = None) -> "Runtime":
        settings = settings or load_settings()
        logs.configure(settings.log_level)
        logs.redact(*settings.secret_values())
        return cls(name, service, settings, start_hooks)

    def database(self) -> "Database[dict[str, Any]]":
        db = self.store.database(self.settings.database_for(self.name))
        if not self._started and self._starter != threading.get_ident():
            self._run_start_hooks()
        return db

    def _run_start_hooks(self) -> None:
        from vllmbench.web.context import Context

        with self._lock:  # other threads wait here until the hooks are done
            if self._started:
                return
            self._starter = threading.get_ident()  # the hooks' own ctx.db calls pass through
            try:
                context = Context(self, None, "start")
                for hook in self._start_hooks:
                    hook(context)
                self._started = True
            finally:
                self._starter = None  # a failure runs the hooks again on the next request

    def resource(self, name: str, factory: Callable[[], Any]) -> Any:
        """A per-process object built on first use (e.g. the workload runtime), then shared."""
        found = self._resources.get(name)
        if found is None:
            with self._resource_lock:
                found = self._resources.get(name)
                if found is None:
                    found = self._resources[name] = factory()
        return found

    def close(self) -> None:
        for resource in self._resources.values():
            closer = getattr(resource, "close", None)
            if callable(closer):
                closer()
        self._resources.clear()
        self.store.close()
