"""Request bodies, and the aiohttp session that checks the server before a run
(``/v1/models``). The requests of a run go through :mod:`vllmbench.harness.h1`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from vllmbench.errors import UserError

READ_BUFFER = 4 * 1024 * 1024  # aiohttp's 64 KiB default cut long-context throughput (vllm#39963)
ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


def new_session(*, connections: int, timeout_s: float, api_key: str | None) -> aiohttp.ClientSession:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, keepalive_timeout=60,
                                     enable_cleanup_closed=False, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector, headers=headers, read_bufsize=READ_BUFFER, auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(10.0, timeout_s)),
        skip_auto_headers=("User-Agent",),
    )


def body_for(endpoint: str, model: str, item: Any, *, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": item.max_tokens, "stream": stream,
                            "ignore_eos": True, "min_tokens": item.max_tokens, "temperature": 0.0}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if endpoint == "chat":
        body["messages"] = item.messages or [{"role": "user", "content": item.text}]
    else:
        body["prompt"] = item.text if item.text is not None else " ".join(str(m.get("content", "")) for m in item.messages)
    return json.dumps(body, separators=(",", ":")).encode()


async def discover_model(session: aiohttp.ClientSession, base_url: str, model: str | None) -> str:
    """The model to use: checked against ``/v1/models``, or its first entry when none is given."""
    try:
        async with session.get(f"{base_url}/v1/models", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status in (401, 403):
                raise UserError(f"{base_url} refused the API key (HTTP {resp.status}); pass --api-key")
            if resp.status != 200:
                raise UserError(f"{base_url}/v1/models answered HTTP {resp.status}; is this an OpenAI-compatible server?")
            names = [m.get("id") for m in (await resp.json()).get("data", []) if isinstance(m, dict)]
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise UserError(f"cannot reach {base_url}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}") from exc
    except ValueError as exc:
        raise UserError(f"{base_url}/v1/models did not answer JSON") from exc
    if not names:
        raise UserError(f"{base_url} serves no model")
    if model is None:
        return str(names[0])
    if model not in names:
        raise UserError(f"model {model!r} is not served by {base_url}; served: {', '.join(map(str, names))}")
    return model
