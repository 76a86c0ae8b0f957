"""Azure OpenAI adapter, on the azure/ fixtures."""
from __future__ import annotations

import json

import pytest

from app.providers.azure import AzureOpenAIAdapter
from app.providers.base import UpstreamError

KEY = "azure-key-0123456789abcdef"


@pytest.fixture
def classic(make_cfg):
    return AzureOpenAIAdapter(make_cfg("azure-openai", "https://myres.openai.azure.com/",
                                       api_version="2024-10-21", secrets={"api_key": KEY},
                                       config={"deployment": "fallback-dep",
                                               "embeddings_deployment": "embed-dep"}))


@pytest.fixture
def v1(make_cfg):
    return AzureOpenAIAdapter(make_cfg("azure-openai", "https://myres.openai.azure.com/openai/v1",
                                       secrets={"api_key": KEY}))


def test_classic_chat_request_uses_deployment_path_api_version_and_api_key(classic, fxjson):
    body = fxjson("azure/chat-request.json")
    body["model"] = "public-name"
    req = classic.chat_request(body, "gpt-4o-prod")
    assert req.url == ("https://myres.openai.azure.com/openai/deployments/gpt-4o-prod/"
                       "chat/completions?api-version=2024-10-21")
    assert req.headers["api-key"] == KEY and "Authorization" not in req.headers
    sent = json.loads(req.body)
    assert "model" not in sent  # the deployment in the path selects the model
    assert sent["messages"] == fxjson("azure/chat-request.json")["messages"]


def test_classic_falls_back_to_config_deployment_and_default_api_version(make_cfg):
    a = AzureOpenAIAdapter(make_cfg("azure-openai", "", config={"resource": "res1",
                                                                "deployment": "dep 1"}))
    req = a.chat_request({"messages": []}, "")
    assert req.url == ("https://res1.openai.azure.com/openai/deployments/dep%201/"
                       "chat/completions?api-version=2024-10-21")


def test_base_with_trailing_openai_segment_is_tolerated(make_cfg):
    a = AzureOpenAIAdapter(make_cfg("azure-openai", "https://r.openai.azure.com/openai",
                                    api_version="2025-01-01-preview"))
    assert a.chat_request({"messages": []}, "d").url == (
        "https://r.openai.azure.com/openai/deployments/d/chat/completions"
        "?api-version=2025-01-01-preview")


def test_missing_deployment_is_a_clear_400(make_cfg):
    a = AzureOpenAIAdapter(make_cfg("azure-openai", "https://r.openai.azure.com"))
    with pytest.raises(UpstreamError) as ei:
        a.chat_request({"messages": []}, "")
    assert ei.value.status == 400 and "deployment" in ei.value.message


def test_v1_style_puts_deployment_in_model_and_has_no_api_version(v1):
    req = v1.chat_request({"messages": [], "stream": True}, "my-deployment")
    assert req.url == "https://myres.openai.azure.com/openai/v1/chat/completions"
    sent = json.loads(req.body)
    assert sent["model"] == "my-deployment" and sent["stream_options"]["include_usage"] is True
    assert req.headers["api-key"] == KEY and req.stream


def test_stream_drops_empty_first_chunk_and_filter_only_chunks(classic, fx, run_decoder,
                                                                split_mode):
    dec = classic.stream_decoder("pub")
    chunks = run_decoder(dec, fx("azure/chat-stream-reported-chunks.sse"), split_mode)
    assert len(chunks) == 1
    c = chunks[0]
    assert c["model"] == "pub" and c["choices"][0]["delta"] == {"content": " have"}
    assert dec.done and dec.usage is None


def test_stream_content_filter_finish_reason_passes_through(classic):
    dec = classic.stream_decoder("pub")
    chunks = dec.feed(b'data: {"id":"x","object":"","created":0,"model":"",'
                      b'"choices":[{"index":0,"finish_reason":"content_filter",'
                      b'"content_filter_results":{}}]}\n\n')
    assert chunks[0]["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[0]["choices"][0]["delta"] == {}
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert dec.finish_reason == "content_filter"


def test_parse_chat_responses(classic, fx):
    obj, usage = classic.parse_chat_response(fx("azure/chat-response.json"), "pub")
    assert obj["model"] == "pub" and usage.prompt_tokens == 33 and usage.completion_tokens == 557
    obj, usage = classic.parse_chat_response(fx("azure/chat-response-content-filter.json"), "pub")
    assert obj["model"] == "pub" and "prompt_filter_results" in obj
    assert usage.total_tokens == 1863


def test_content_filter_error_maps_to_400_content_filter(classic, fx):
    e = classic.parse_error(400, {}, fx("azure/error-400-content-filter.json"))
    assert (e.status, e.type, e.code, e.error_class, e.param) == (
        400, "invalid_request_error", "content_filter", "content_filter", "prompt")
    assert e.message.startswith("The response was filtered")


@pytest.mark.parametrize("status,body,gw,code", [
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}},
     502, "upstream_auth_failed"),
    (404, {"error": {"code": "DeploymentNotFound",
                     "message": "The API deployment for this resource does not exist."}},
     404, "model_not_found"),
    (429, {"error": {"code": "429", "message": "Requests ... Please retry after 6 seconds."}},
     429, "429"),
    (500, {"error": {"code": "InternalServerError", "message": "boom"}}, 502, "upstream_error"),
])
def test_other_errors(classic, status, body, gw, code):
    e = classic.parse_error(status, {"retry-after": "6"}, json.dumps(body).encode())
    assert (e.status, e.code) == (gw, code)
    if status == 429:
        assert e.retry_after == "6" and e.error_class == "rate_limited"


def test_embeddings_deployment(classic, v1, fxjson, fx):
    body = fxjson("azure/embeddings-request.json")
    req = classic.embeddings_request(body, "")
    assert req.url == ("https://myres.openai.azure.com/openai/deployments/embed-dep/embeddings"
                       "?api-version=2024-10-21")
    assert json.loads(req.body) == body and req.headers["api-key"] == KEY
    assert "/deployments/ada-prod/" in classic.embeddings_request(body, "ada-prod").url
    req = v1.embeddings_request(body, "ada-prod")
    assert req.url == "https://myres.openai.azure.com/openai/v1/embeddings"
    assert json.loads(req.body)["model"] == "ada-prod"
    obj, usage = classic.parse_embeddings_response(fx("azure/embeddings-response.json"), "pub",
                                                   body)
    assert obj["model"] == "pub" and obj["object"] == "list" and usage.prompt_tokens == 4
    assert obj["data"][0]["object"] == "embedding" and len(obj["data"][0]["embedding"]) == 8


def test_models_and_health(classic, v1):
    req = classic.models_request()
    assert req.url == "https://myres.openai.azure.com/openai/models?api-version=2024-10-21"
    assert req.method == "GET" and req.headers["api-key"] == KEY
    assert classic.health_request().url == req.url
    assert v1.models_request().url == "https://myres.openai.azure.com/openai/v1/models"
    data = json.dumps({"data": [
        {"id": "gpt-4o-2024-08-06", "capabilities": {"chat_completion": True, "embeddings": False}},
        {"id": "text-embedding-3-large", "capabilities": {"chat_completion": False,
                                                          "embeddings": True}},
        {"id": "dall-e-3", "capabilities": {"chat_completion": False, "embeddings": False}},
        {"id": "text-embedding-ada-002"},
    ]}).encode()
    assert classic.parse_models(data) == [
        {"id": "gpt-4o-2024-08-06", "kind": "chat"},
        {"id": "text-embedding-3-large", "kind": "embedding"},
        {"id": "text-embedding-ada-002", "kind": "embedding"},
    ]
