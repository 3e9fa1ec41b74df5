"""HTTP to the server under test: the one place the load generator touches aiohttp.

Library exceptions become an error class on the request record (``timeout``,
``disconnected``, ``connect_error``, ``http_5xx``...), never an exception out of a
request, so one bad response cannot stop a run or poison its statistics.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from vllmbench.errors import UserError
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.sse import StreamState, tokens_from_body

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


def _error_class(status: int) -> str:
    return f"http_{status}" if status in (400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504) else f"http_{status // 100}xx"


async def send(session: aiohttp.ClientSession, url: str, body: bytes, rec: RequestRecord, *, t0: int, stream: bool,
               planned_input: int) -> None:
    """Send one request and fill ``rec`` (times relative to ``t0``)."""
    now = time.monotonic_ns
    rec.sent_ns = now() - t0
    try:
        async with session.post(url, data=body, headers={"X-Request-Id": rec.request_id}) as resp:
            rec.status = resp.status
            if resp.status != 200:
                await resp.read()
                rec.error = _error_class(resp.status)
                return
            if stream:
                state = StreamState()
                content = resp.content
                while True:
                    data = await content.readany()
                    if not data:
                        break
                    state.feed(data, now() - t0)
                rec.end_ns = now() - t0
                rec.token_ns = state.token_ns
                usage = state.usage
                if state.error:
                    rec.error = state.error
                elif not state.done:
                    rec.error = "incomplete_stream"
                local_out = len(state.token_ns)
            else:
                raw = await resp.read()
                rec.end_ns = now() - t0
                obj = json.loads(raw)
                usage = obj.get("usage") if isinstance(obj, dict) else None
                local_out, _ = tokens_from_body(obj if isinstance(obj, dict) else {})
                rec.token_ns = [rec.end_ns]
    except asyncio.TimeoutError:
        rec.error = "timeout"
        return
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
        rec.error = "disconnected"
        return
    except aiohttp.ClientConnectorError:
        rec.error = "connect_error"
        return
    except aiohttp.ClientError:
        rec.error = "client_error"
        return
    except ValueError:
        rec.error = "malformed_body"
        return
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        rec.output_tokens = usage["completion_tokens"]
        rec.input_tokens = usage.get("prompt_tokens", planned_input)
        rec.tokens_from = "server"
    else:
        rec.output_tokens, rec.input_tokens, rec.tokens_from = local_out, planned_input, "local"
    if rec.error is None and not rec.token_ns:
        rec.error = "no_tokens"


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
