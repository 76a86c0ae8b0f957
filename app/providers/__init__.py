"""Provider adapters: pure translation between the OpenAI wire format and each upstream.

``base.py`` defines the interface, ``registry.py`` maps provider types to adapter classes
(``get_adapter(cfg)``), one module per upstream family, plus shared helpers in ``common.py``
(JSON, error mapping, scrubbing, tool/data-URI helpers) and ``sse.py`` (incremental SSE/NDJSON).

Contract for the proxy core
---------------------------
* Send ``UpstreamRequest`` exactly as built (method, url, headers, body): Bedrock requests are
  SigV4-signed over the URL and the ``Accept``/``Content-Type`` headers, so rewriting them
  breaks the signature. Adapters may raise ``UpstreamError`` (400 for untranslatable input,
  502 for missing credentials) while building a request.
* Non-2xx upstream response -> ``adapter.parse_error(status, headers, body)`` -> return
  ``err.status`` / ``err.to_openai()`` (+ ``Retry-After: err.retry_after`` when set).
  ``common.timeout_error()`` / ``common.connection_error()`` map client-side failures.
* Streams: feed every upstream byte chunk to ``decoder.feed`` and then call ``decoder.close()``;
  emit the returned chunk dicts as ``data: <json>``. Decoders never return a usage chunk: after
  the last chunk, if ``base.client_wants_usage(client_body)`` emit
  ``{"id", "object": "chat.completion.chunk", "created", "model", "choices": [],
  "usage": decoder.usage.as_openai()}``, then ``data: [DONE]``. ``decoder.usage`` is None if the
  upstream never reported usage (interrupted stream) -> estimate. ``decoder.done`` is False when
  the upstream stopped without its end marker (truncated stream). ``UpstreamError`` raised by
  ``feed`` is an error that arrived inside a 200 stream.
* Usage with ``estimated=True`` means the upstream reported none (or only a rough count).
* Embeddings: use ``embeddings_requests`` (a list; one element except for Bedrock Titan lists
  and Cohere batches > 96), send them in order, then ``parse_embeddings_responses(bodies, ...)``.
"""
