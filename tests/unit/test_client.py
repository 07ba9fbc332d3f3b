import asyncio
import contextlib
import json
import socket

import pytest
from aiohttp import web
from tenacity import wait_none

import rewardflow.generation.client as client_module
from rewardflow import redaction
from rewardflow.errors import (
    ModelAuthError,
    ModelClientError,
    ModelGenerationError,
    ModelInvalidRequestError,
    ModelUnusableResponseError,
    RateLimitError,
)
from rewardflow.generation.client import (
    ChatRequest,
    OpenAIChatClient,
    classify_http_error,
    parse_chat_response,
    parse_retry_after,
)

API_KEY = "sk-test-secret-0123456789"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
]


def ok_body(content="4", finish_reason="stop", model="served-model"):
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
        }
    )


# --- parse_retry_after -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "3"}, 3.0),
        ({"RETRY-AFTER": "4"}, 4.0),
        ({"Retry-After-Ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "-2"}, None),
        ({"retry-after-ms": "-5", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"Retry-After": "119"}, 119.0),
        ({"Retry-After": "100000"}, 120.0),  # capped: a server cannot park a job for a day
        ({"retry-after-ms": "999999999"}, 120.0),
        ({}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


# --- classify_http_error -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected_class"),
    [
        (400, ModelInvalidRequestError),
        (401, ModelAuthError),
        (403, ModelAuthError),
        (404, ModelInvalidRequestError),
        (408, ModelGenerationError),
        (409, ModelGenerationError),
        (422, ModelInvalidRequestError),
        (429, RateLimitError),
        (500, ModelGenerationError),
        (502, ModelGenerationError),
        (503, ModelGenerationError),
    ],
)
def test_classify_http_error_maps_status_to_class(status, expected_class):
    body = json.dumps({"error": {"message": f"detail for {status}", "type": "x"}})
    error = classify_http_error(status, body, {})
    assert type(error) is expected_class
    assert isinstance(error, ModelClientError)
    assert f"detail for {status}" in str(error)
    assert str(status) in str(error)


def test_classify_429_carries_retry_after():
    error = classify_http_error(429, '{"error": {"message": "slow down"}}', {"Retry-After": "7"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after_s == 7.0
    assert "slow down" in str(error)
    without = classify_http_error(429, "{}", {})
    assert without.retry_after_s is None


def test_classify_uses_string_error_and_plain_bodies():
    assert "model not found" in str(classify_http_error(404, '{"error": "model not found"}', {}))
    plain = classify_http_error(502, "  <html>Bad Gateway</html>  ", {})
    assert "<html>Bad Gateway</html>" in str(plain)
    listed = classify_http_error(500, "[1, 2]", {})
    assert "[1, 2]" in str(listed)


def test_classify_truncates_long_bodies():
    error = classify_http_error(500, "x" * 5000, {})
    assert "x" * 300 in str(error)
    assert "x" * 301 not in str(error)


def test_auth_error_names_the_key_variable_but_never_the_key():
    headers = {"Authorization": f"Bearer {API_KEY}", "WWW-Authenticate": "Bearer"}
    body = json.dumps({"error": {"message": "Invalid API key provided"}})
    error = classify_http_error(401, body, headers, api_key_env="FIREWORKS_API_KEY")
    message = str(error)
    assert isinstance(error, ModelAuthError)
    assert "$FIREWORKS_API_KEY" in message
    assert "Invalid API key provided" in message
    assert API_KEY not in message
    assert "Bearer" not in message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
def test_no_error_message_includes_the_authorization_header(status):
    headers = {"Authorization": f"Bearer {API_KEY}", "Retry-After": "1"}
    error = classify_http_error(status, '{"error": {"message": "nope"}}', headers, "KEY_ENV")
    assert API_KEY not in str(error)


# --- parse_chat_response -----------------------------------------------------------------


def test_parse_chat_response_valid_body():
    body = json.dumps(
        {
            "model": "served",
            "choices": [
                {"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"}
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 2,
                "total_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }
    )
    content, finish_reason, usage, model = parse_chat_response(body)
    assert content == "Hi"
    assert finish_reason == "length"
    assert usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert model == "served"


def test_parse_chat_response_allows_empty_content_and_missing_usage():
    body = json.dumps({"choices": [{"message": {"content": ""}}]})
    assert parse_chat_response(body) == ("", None, None, None)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("<html>oops</html>", "not JSON"),
        ("", "not JSON"),
        ("{}", "without choices"),
        ('{"choices": null}', "without choices"),
        ("[1, 2]", "without choices"),
        ('{"choices": [{"finish_reason": "stop"}]}', "no message"),
        ('{"choices": [{"message": {"role": "assistant"}}]}', "no message content"),
        ('{"choices": [{"message": {"content": 7}}]}', "no message content"),
        ('{"choices": ["text"]}', "no message"),
    ],
)
def test_parse_chat_response_rejects_malformed_bodies(body, fragment):
    with pytest.raises(ModelGenerationError, match=fragment):
        parse_chat_response(body)


TOOL_CALL = {"type": "function", "function": {"name": "search", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("choices", "reason"),
    [
        ([], "empty choices"),
        ([{"message": {"content": None}, "finish_reason": "stop"}], "content is null"),
        (
            [{"message": {"content": None}, "finish_reason": "content_filter"}],
            "finish_reason: content_filter",
        ),
        (
            [
                {
                    "message": {"content": None, "tool_calls": [TOOL_CALL]},
                    "finish_reason": "tool_calls",
                }
            ],
            "only tool calls (search)",
        ),
        (
            [{"message": {"content": "", "tool_calls": [TOOL_CALL, TOOL_CALL]}}],
            "only tool calls (search, search)",
        ),
        (
            [{"message": {"content": None, "refusal": "I can't help with that."}}],
            "refused: I can't help with that.",
        ),
    ],
)
def test_well_formed_answers_without_text_are_unusable_not_transient(choices, reason):
    body = json.dumps({"model": "m", "choices": choices})
    with pytest.raises(ModelUnusableResponseError) as excinfo:
        parse_chat_response(body)
    assert reason in str(excinfo.value)
    # Not a ModelGenerationError: those are retried, and a retry would be paid for nothing.
    assert not isinstance(excinfo.value, ModelGenerationError)


# --- ChatRequest -------------------------------------------------------------------------


def test_to_payload_omits_none_fields():
    payload = ChatRequest(model="m", messages=MESSAGES).to_payload()
    assert payload == {"model": "m", "messages": MESSAGES}


def test_to_payload_includes_set_fields_and_merges_extra_body():
    request = ChatRequest(
        model="m",
        messages=tuple(MESSAGES),
        temperature=0.0,
        top_p=0.5,
        max_tokens=64,
        stop=("\n\n", "END"),
        seed=0,
        extra_body={"reasoning_effort": "low", "n": 1},
    )
    assert request.to_payload() == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 64,
        "stop": ["\n\n", "END"],
        "seed": 0,
        "reasoning_effort": "low",
        "n": 1,
    }


def test_to_payload_drops_empty_stop_list():
    assert "stop" not in ChatRequest(model="m", messages=MESSAGES, stop=[]).to_payload()


# --- real HTTP against a local aiohttp server --------------------------------------------


@pytest.fixture
def backoff_calls(monkeypatch):
    """Zero-wait backoff that records each time the client falls back to it."""
    calls = []
    zero = wait_none()

    def recording_wait(retry_state):
        calls.append(retry_state.attempt_number)
        return zero(retry_state)

    monkeypatch.setattr(client_module, "_BACKOFF", recording_wait)
    return calls


class ScriptedServer:
    """Answers each request with the next scripted (status, body, headers); repeats the last."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    async def handle(self, request):
        raw = await request.text()
        self.requests.append({"body": raw, "headers": dict(request.headers)})
        status, body, headers = self.script[min(len(self.requests), len(self.script)) - 1]
        payload = {"body": body} if isinstance(body, bytes) else {"text": body}
        return web.Response(status=status, headers=headers, **payload)


@contextlib.asynccontextmanager
async def serve(handler):
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1/"
    finally:
        await runner.cleanup()


def run_complete(server, request=None, **client_kwargs):
    request = request or ChatRequest(model="m", messages=MESSAGES)
    client_kwargs.setdefault("timeout_s", 5.0)

    async def main():
        async with serve(server.handle) as base_url:
            client = OpenAIChatClient(base_url, **client_kwargs)
            try:
                return await client.complete(request)
            finally:
                await client.aclose()

    return asyncio.run(main())


def test_request_payload_and_headers_reach_the_server(backoff_calls):
    server = ScriptedServer((200, ok_body("The answer is 4."), {}))
    request = ChatRequest(
        model="acme/model-7b",
        messages=MESSAGES,
        temperature=0.3,
        top_p=0.9,
        max_tokens=128,
        stop=["END"],
        seed=11,
        extra_body={"reasoning_effort": "low", "metadata": {"run": "unit"}},
    )
    response = run_complete(server, request, api_key=API_KEY)
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert json.loads(sent["body"]) == {
        "model": "acme/model-7b",
        "messages": MESSAGES,
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 128,
        "stop": ["END"],
        "seed": 11,
        "reasoning_effort": "low",
        "metadata": {"run": "unit"},
    }
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert sent["headers"]["Content-Type"].startswith("application/json")
    assert response.content == "The answer is 4."
    assert response.finish_reason == "stop"
    assert response.usage == {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    assert response.model == "served-model"
    assert response.attempts == 1
    assert response.latency_s is not None and response.latency_s >= 0
    assert backoff_calls == []


def test_no_authorization_header_without_a_key(backoff_calls):
    server = ScriptedServer((200, ok_body(), {}))
    run_complete(server)
    assert "Authorization" not in server.requests[0]["headers"]


def test_server_errors_are_retried_until_success(backoff_calls):
    server = ScriptedServer(
        (500, '{"error": {"message": "overloaded"}}', {}),
        (500, '{"error": {"message": "overloaded"}}', {}),
        (200, ok_body("third time lucky"), {}),
    )
    response = run_complete(server, max_attempts=5)
    assert response.content == "third time lucky"
    assert response.attempts == 3
    assert len(server.requests) == 3
    assert backoff_calls == [1, 2]
    first_body = server.requests[0]["body"]
    assert all(r["body"] == first_body for r in server.requests)


def test_rate_limit_with_retry_after_waits_as_told_then_succeeds(backoff_calls):
    server = ScriptedServer(
        (429, '{"error": {"message": "rate limited"}}', {"Retry-After": "0"}),
        (200, ok_body("after the wait"), {}),
    )
    response = run_complete(server)
    assert response.content == "after the wait"
    assert response.attempts == 2
    assert len(server.requests) == 2
    assert backoff_calls == []  # the server's Retry-After was used, not the backoff


def test_rate_limit_without_retry_after_uses_backoff(backoff_calls):
    server = ScriptedServer((429, "{}", {}), (200, ok_body(), {}))
    assert run_complete(server).attempts == 2
    assert backoff_calls == [1]


def test_auth_error_is_raised_after_one_request(backoff_calls):
    server = ScriptedServer((401, '{"error": {"message": "Invalid API key"}}', {}))
    with pytest.raises(ModelAuthError) as excinfo:
        run_complete(server, api_key=API_KEY, api_key_env="MY_KEY", max_attempts=5)
    assert len(server.requests) == 1
    assert excinfo.value.attempts == 1
    assert "Invalid API key" in str(excinfo.value)
    assert "$MY_KEY" in str(excinfo.value)
    assert API_KEY not in str(excinfo.value)
    assert backoff_calls == []


def test_invalid_request_is_raised_after_one_request(backoff_calls):
    body = '{"error": {"message": "context length exceeded"}}'
    server = ScriptedServer((400, body, {}))
    with pytest.raises(ModelInvalidRequestError, match="context length exceeded"):
        run_complete(server, max_attempts=5)
    assert len(server.requests) == 1


def test_non_json_200_is_retried_then_raised_with_attempts(backoff_calls):
    server = ScriptedServer((200, "<html>proxy error</html>", {}))
    with pytest.raises(ModelGenerationError, match="not JSON") as excinfo:
        run_complete(server, max_attempts=3)
    assert len(server.requests) == 3
    assert excinfo.value.attempts == 3


NOT_UTF8 = ok_body("cafe").encode().replace(b"cafe", b"caf\xe9")  # Latin-1, declared UTF-8


def test_a_200_that_is_not_utf8_is_retried_like_a_malformed_body(backoff_calls):
    server = ScriptedServer((200, NOT_UTF8, {}), (200, ok_body("fine"), {}))
    response = run_complete(server, max_attempts=3)
    assert response.content == "fine"
    assert response.attempts == 2


def test_a_200_that_is_never_utf8_ends_as_a_generation_error(backoff_calls):
    server = ScriptedServer((200, NOT_UTF8, {"Content-Type": "application/json"}))
    with pytest.raises(ModelGenerationError, match="not valid UTF-8") as excinfo:
        run_complete(server, max_attempts=3)
    assert excinfo.value.attempts == 3


def test_an_error_body_that_is_not_utf8_is_still_classified(backoff_calls):
    server = ScriptedServer((400, b'{"error": {"message": "bad caf\xe9"}}', {}))
    with pytest.raises(ModelInvalidRequestError, match="HTTP 400: bad caf"):
        run_complete(server, max_attempts=3)
    assert len(server.requests) == 1


def test_a_tool_call_only_answer_is_raised_after_one_request(backoff_calls):
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    body = json.dumps({"choices": [{"message": message, "finish_reason": "tool_calls"}]})
    server = ScriptedServer((200, body, {}))
    with pytest.raises(ModelUnusableResponseError, match="only tool calls") as excinfo:
        run_complete(server, max_attempts=5)
    assert len(server.requests) == 1
    assert excinfo.value.attempts == 1
    assert backoff_calls == []


def test_a_key_echoed_in_a_401_body_is_redacted_from_the_error(backoff_calls):
    async def echo_authorization(request):
        offered = request.headers.get("Authorization", "")
        message = f"Incorrect API key provided: {offered.removeprefix('Bearer ')}"
        return web.json_response({"error": {"message": message}}, status=401)

    async def main():
        async with serve(echo_authorization) as base_url:
            client = OpenAIChatClient(base_url, API_KEY, api_key_env="MY_KEY", timeout_s=5)
            try:
                await client.complete(ChatRequest(model="m", messages=MESSAGES))
            finally:
                await client.aclose()

    with pytest.raises(ModelAuthError) as excinfo:
        asyncio.run(main())
    assert "Incorrect API key provided: [REDACTED]" in str(excinfo.value)
    assert API_KEY not in str(excinfo.value)


def test_an_echoed_key_cut_by_the_excerpt_leaves_no_prefix_behind(monkeypatch):
    monkeypatch.setattr(redaction, "_SECRETS", set())
    redaction.register_secret(API_KEY)
    # The key straddles the excerpt's end: redacting after cutting would leave its prefix.
    body = "x" * 290 + API_KEY
    message = str(classify_http_error(500, body, {}))
    assert API_KEY[:10] not in message


def test_persistent_server_error_exhausts_attempts(backoff_calls):
    server = ScriptedServer((503, '{"error": {"message": "unavailable"}}', {}))
    with pytest.raises(ModelGenerationError, match="HTTP 503: unavailable") as excinfo:
        run_complete(server, max_attempts=4)
    assert len(server.requests) == 4
    assert excinfo.value.attempts == 4


def test_hanging_server_times_out(backoff_calls):
    hits = []

    async def main():
        release = asyncio.Event()

        async def hang(request):
            hits.append(request.path)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), timeout=5)
            return web.Response(text=ok_body())

        async with serve(hang) as base_url:
            client = OpenAIChatClient(base_url, timeout_s=0.3, max_attempts=2)
            try:
                await client.complete(ChatRequest(model="m", messages=MESSAGES))
            finally:
                release.set()
                await client.aclose()

    with pytest.raises(ModelGenerationError, match="timed out") as excinfo:
        asyncio.run(main())
    assert excinfo.value.attempts == 2
    assert hits == ["/v1/chat/completions", "/v1/chat/completions"]


def test_refused_connection_is_a_generation_error(backoff_calls):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main():
        client = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", timeout_s=2, max_attempts=2)
        try:
            await client.complete(ChatRequest(model="m", messages=MESSAGES))
        finally:
            await client.aclose()

    with pytest.raises(ModelGenerationError, match="connection failed") as excinfo:
        asyncio.run(main())
    assert excinfo.value.attempts == 2
    assert backoff_calls[0] == 1  # a dropped connection falls back to backoff


def test_a_request_over_its_time_stops_at_its_first_failure_counting_from_its_first_attempt(
    backoff_calls,
):
    """The first attempt is made before the retry loop; its time still counts against the limit."""
    server = ScriptedServer((503, '{"error": {"message": "unavailable"}}', {}))
    with pytest.raises(ModelGenerationError) as excinfo:
        run_complete(server, max_attempts=4, max_request_time_s=0.0)
    assert len(server.requests) == 1
    assert excinfo.value.attempts == 1
