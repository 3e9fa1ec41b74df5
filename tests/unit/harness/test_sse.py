import pytest

from vllmbench.harness.sse import StreamState

COMPLETION = b'data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":" hi","finish_reason":null}]}\n\n'
ROLE = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
CONTENT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
SPACED = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
DONE = b"data: [DONE]\n\n"


def feed(*chunks: bytes) -> StreamState:
    state = StreamState()
    for t, chunk in enumerate(chunks):
        state.feed(chunk, t * 10)
    return state


@pytest.mark.parametrize("chunks,tokens,usage,done,error", [
    ((COMPLETION, COMPLETION, USAGE, DONE), [0, 10], 2, True, None),
    ((ROLE + CONTENT, CONTENT, DONE), [0, 10], None, True, None),          # empty role chunk is not a token
    ((ROLE, CONTENT + CONTENT, DONE), [10, 10], None, True, None),          # two tokens in one chunk share a time
    ((COMPLETION[:20], COMPLETION[20:], DONE), [10], None, True, None),    # an event split across chunks
    ((SPACED, DONE), [0], None, True, None),                               # JSON with spaces takes the slow path
    ((COMPLETION.replace(b"\n\n", b"\r\n\r\n"), DONE), [0], None, True, None),
    ((b": keep-alive\n\n", COMPLETION, DONE), [10], None, True, None),
    ((COMPLETION, b'data: {"choices": [{"text": \n\n', DONE), [0], None, True, "malformed_sse"),
    ((COMPLETION, b"garbage line\n\n"), [0], None, False, "malformed_sse"),
    ((COMPLETION, b'data: {"error":{"message":"boom","code":500}}\n\n'), [0], None, False, "stream_error"),
    ((COMPLETION,), [0], None, False, None),
])
def test_stream_parsing(chunks, tokens, usage, done, error):
    state = feed(*chunks)
    assert state.token_ns == tokens
    assert (state.usage or {}).get("completion_tokens") == usage
    assert state.done is done
    assert state.error == error
