import pytest

from vllmbench.harness.sse import StreamState

COMPLETION = b'data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":" hi","finish_reason":null}]}\n\n'
ROLE = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
CONTENT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
SPACED = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
DONE = b"data: [DONE]\n\n"


FINAL_WITH_USAGE = (b'data: {"id":"c","choices":[{"index":0,"text":" end","finish_reason":"length"}],'
                    b'"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n')
EMPTY_WITH_USAGE = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],'
                    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n')


def feed(*chunks: bytes) -> StreamState:
    state = StreamState()
    for t, chunk in enumerate(chunks):
        state.feed(chunk, t * 10)
    state.close()
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
    ((COMPLETION, COMPLETION, FINAL_WITH_USAGE, DONE), [0, 10, 20], 3, True, None),  # usage in the last token event
    ((CONTENT, CONTENT, EMPTY_WITH_USAGE, DONE), [0, 10], 2, True, None),          # usage beside an empty token
    ((COMPLETION[:-1], b"\n" + COMPLETION, DONE), [10, 10], None, True, None),      # the blank line split in two
    ((COMPLETION.replace(b"\n\n", b"\r\n\r"), b"\n", DONE), [10], None, True, None),  # CR here, its LF in the next read
])
def test_stream_parsing(chunks, tokens, usage, done, error):
    state = feed(*chunks)
    assert state.token_ns == tokens
    assert (state.usage or {}).get("completion_tokens") == usage
    assert state.done is done
    assert state.error == error


def test_a_32_mb_event_arriving_in_pieces_is_joined_once_and_read_right():
    text = "x" * (32 * 1024 * 1024)
    event = ('data: {"id":"c","choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n' % text).encode()
    state = StreamState()
    for i in range(0, len(event), 65536):
        state.feed(event[i : i + 65536], i)
        if i + 65536 < len(event):
            assert len(state.parts) == i // 65536 + 1  # kept as pieces, not joined again on every read
    state.feed(DONE, 1)
    assert state.token_ns == [len(event) // 65536 * 65536] and state.done and state.parts == []
