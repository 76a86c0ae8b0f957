"""Azure OpenAI (azure/endpoints.md).

Two addressing styles, chosen from ``api_base``:

* classic (default): ``api_base`` = ``https://{resource}.openai.azure.com`` (a trailing
  ``/openai`` is tolerated; empty -> built from ``config["resource"]``);
  ``POST {base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``,
  deployment = the model's upstream id, else ``config["deployment"]``; no ``model`` in the body.
* v1: ``api_base`` ends with ``/openai/v1``; ``POST {base}/chat/completions`` with
  ``model`` = deployment name and no api-version.

The Responses API (``POST /v1/responses`` passed through) exists only on the v1 surface:
``{root}/openai/v1/responses`` with the deployment as ``model``, whichever style ``api_base`` has.

Auth is the ``api-key`` header. Streams reuse the OpenAI decoder, which already drops Azure's
empty-choices first chunk and filter-only chunks (pitfall 2).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .base import UpstreamError, UpstreamRequest
from .common import bad_request, dumps, extract_error_fields, load_json_object, loads, malformed, scrub
from .openai import OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAIAdapter):
    type = "azure-openai"
    label = "Azure OpenAI"
    default_api_base = ""
    config_fields = ("deployment", "embeddings_deployment", "resource", "responses_api")
    secret_fields = ("api_key",)
    max_tokens_field = "max_completion_tokens"

    # --- addressing ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        base = (self.provider.api_base or "").strip().rstrip("/")
        if not base:
            resource = (self.provider.config or {}).get("resource")
            if not resource:
                raise bad_request("Azure OpenAI provider needs api_base or config.resource.")
            base = f"https://{resource}.openai.azure.com"
        return base

    @property
    def is_v1(self) -> bool:
        return self.base_url.lower().endswith("/openai/v1")

    @property
    def _root(self) -> str:
        """Resource root without a trailing /openai (classic style)."""
        base = self.base_url
        return base[: -len("/openai")] if base.lower().endswith("/openai") else base

    @property
    def api_version(self) -> str:
        return (self.provider.api_version or (self.provider.config or {}).get("api_version")
                or DEFAULT_API_VERSION)

    def _deployment(self, upstream_model: str, embeddings: bool = False) -> str:
        cfg = self.provider.config or {}
        dep = upstream_model or (cfg.get("embeddings_deployment") if embeddings else None) \
            or cfg.get("deployment")
        if not dep:
            raise bad_request("No Azure deployment configured for this model.", "model")
        return str(dep)

    def _op_url(self, deployment: str, op: str) -> str:
        if self.is_v1:
            return f"{self.base_url}/{op}"
        return (f"{self._root}/openai/deployments/{quote(deployment, safe='')}/{op}"
                f"?api-version={quote(self.api_version, safe='')}")

    def _headers(self, stream: bool = False, json_body: bool = True) -> dict[str, str]:
        h: dict[str, str] = {"Accept": "text/event-stream" if stream else "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        key = self.secret("api_key")
        if key:
            h["api-key"] = key
        return h

    # --- chat ----------------------------------------------------------------------------------
    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        deployment = self._deployment(upstream_model)
        out = self.prepare_chat_body(body, deployment)
        if not self.is_v1:
            out.pop("model", None)  # the deployment in the path selects the model
        stream = bool(out.get("stream"))
        return UpstreamRequest("POST", self._op_url(deployment, "chat/completions"),
                               self._headers(stream), dumps(out), stream=stream)

    def _responses_target(self, upstream_model: str) -> tuple[str, str]:
        """Azure serves the Responses API only on its v1 surface, deployment name as ``model``."""
        base = self.base_url if self.is_v1 else f"{self._root}/openai/v1"
        return f"{base}/responses", self._deployment(upstream_model)

    # --- embeddings ----------------------------------------------------------------------------
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        deployment = self._deployment(upstream_model, embeddings=True)
        out = dict(body)
        if self.is_v1:
            out["model"] = deployment
        else:
            out.pop("model", None)
        return UpstreamRequest("POST", self._op_url(deployment, "embeddings"), self._headers(),
                               dumps(out))

    # --- errors --------------------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        try:
            obj = loads(data) if data else None
        except (ValueError, UnicodeDecodeError):
            obj = None
        message, _type, code, param = extract_error_fields(obj)
        inner = (obj or {}).get("error") if isinstance(obj, dict) else None
        inner_code = ((inner or {}).get("innererror") or {}).get("code") \
            if isinstance(inner, dict) else None
        if status == 400 and (code == "content_filter"
                              or inner_code == "ResponsibleAIPolicyViolation"):
            return UpstreamError(400, scrub(message, self.provider.secrets) or
                                 "The request was blocked by Azure's content filter.",
                                 "invalid_request_error", "content_filter", "content_filter",
                                 param=param or "prompt")
        if status == 404 and code == "DeploymentNotFound":
            return UpstreamError(404, scrub(message, self.provider.secrets),
                                 "invalid_request_error", "model_not_found", "not_found")
        return super().parse_error(status, headers, data)

    # --- health / models -----------------------------------------------------------------------
    def models_request(self) -> UpstreamRequest:
        if self.is_v1:
            url = f"{self.base_url}/models"
        else:
            url = f"{self._root}/openai/models?api-version={quote(self.api_version, safe='')}"
        return UpstreamRequest("GET", url, self._headers(json_body=False))

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        obj = load_json_object(data, "model list")
        items = obj.get("data")
        if not isinstance(items, list):
            raise malformed("model list")
        out = []
        for m in items:
            if not isinstance(m, dict) or not m.get("id"):
                continue
            caps = m.get("capabilities") if isinstance(m.get("capabilities"), dict) else {}
            if caps.get("embeddings") and not caps.get("chat_completion"):
                kind = "embedding"
            elif caps:
                kind = "chat" if caps.get("chat_completion") else "other"
            else:
                kind = "embedding" if "embed" in str(m["id"]).lower() else "chat"
            out.append({"id": str(m["id"]), "kind": kind})
        return [m for m in out if m["kind"] != "other"]
