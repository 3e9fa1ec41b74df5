"""The MongoDB adapter: the only place that imports pymongo.

Every call goes through :func:`translate`, which turns pymongo's exceptions into the
project's errors (a server that cannot be reached becomes ``DependencyUnavailable``,
answered 503 with Retry-After).
"""

from vllmbench.store.mongo import MongoStore, translate

__all__ = ["MongoStore", "translate"]
