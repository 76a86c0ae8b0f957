/* Playground: chat and compare pages. Streams answers from /playground/chat (server-sent
   events read from a fetch body, so a POST can stream and Stop can abort it).
   Model output is untrusted: text is only ever set with textContent; the only HTML inserted
   is the server's sanitised markdown rendering ("render" events and saved answers' "html").
   No inline scripts; the page's data comes from a JSON <script type="application/json">. */
(function () {
  "use strict";

  var root = document.querySelector("[data-playground]");
  if (!root) return;
  var data = JSON.parse(document.getElementById("pg-data").textContent);
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var models = {};
  data.models.forEach(function (section) {
    section.models.forEach(function (m) { m.section = section.provider; models[m.name] = m; });
  });
  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------------------ small helpers
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function fmtMs(v) {
    if (v === null || v === undefined) return "–";
    return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
  }
  function fmtUsd(v) {
    var n = Number(v || 0);
    if (!n) return "$0";
    return "$" + (n < 0.01 ? n.toPrecision(2) : n.toFixed(4)).replace(/0+$/, "").replace(/\.$/, "");
  }
  function fmtInt(v) { return (v || 0).toLocaleString("en-US"); }
  function fmtCtx(n) {
    if (!n) return null;
    return n >= 1000000 ? (n / 1000000).toFixed(n % 1000000 ? 1 : 0) + "M" : Math.round(n / 1000) + "k";
  }
  function showError(text) {
    var box = $("pg-param-error");
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
  }
  function setStatus(text) { var s = $("pg-status"); if (s) s.textContent = text || ""; }

  // ------------------------------------------------------------------ model pickers
  function fillSelect(select) {
    var optional = select.hasAttribute("data-optional");
    select.replaceChildren();
    if (optional || !data.models.length) {
      select.appendChild(el("option", null, data.models.length ? "— none —" : "No models available")).value = "";
    }
    data.models.forEach(function (section) {
      var group = document.createElement("optgroup");
      group.label = section.provider;
      section.models.forEach(function (m) {
        var opt = el("option", null, m.name + (m.deployments > 1 ? "  (" + m.deployments + " deployments)" : ""));
        opt.value = m.name;
        group.appendChild(opt);
      });
      select.appendChild(group);
    });
  }

  function badge(text, cls, title) {
    var b = el("span", "cap " + (cls || ""), text);
    if (title) b.title = title;
    return b;
  }

  function modelInfo(m) {
    var box = el("div", "pg-model-card");
    if (!m) return box;
    var caps = el("span", "caps");
    if (m.streaming) caps.appendChild(badge("streaming", "cap-on", "Answers stream token by token"));
    if (m.tools) caps.appendChild(badge("tools", "cap-on", "Accepts tool (function) definitions"));
    if (m.vision) caps.appendChild(badge("vision", "cap-on", "Accepts images"));
    if (m.json) caps.appendChild(badge("json", "cap-on", "Supports JSON mode"));
    box.appendChild(caps);
    var facts = [];
    if (m.context_window) facts.push(fmtCtx(m.context_window) + " context");
    facts.push("$" + m.input_price + " / $" + m.output_price + " per 1M tokens");
    facts.push(m.providers.join(", "));
    box.appendChild(el("span", "muted small", facts.join(" · ")));
    return box;
  }

  function currentModel(select) { return models[(select || {}).value] || null; }

  function applyCapabilities(m) {
    document.querySelectorAll("[data-vision-only]").forEach(function (node) {
      node.classList.toggle("is-disabled", !(m && m.vision));
      node.querySelectorAll("input").forEach(function (i) { i.disabled = !(m && m.vision); });
      node.title = m && m.vision ? "" : "This model does not accept images";
    });
    document.querySelectorAll("[data-tools-only]").forEach(function (node) {
      var on = !!(m && m.tools);
      node.querySelectorAll("textarea").forEach(function (t) { t.disabled = !on; });
      var hint = node.querySelector("[data-tools-hint]");
      if (hint) hint.textContent = on ? "Tool calls the model makes are shown in the chat; answer them with a result." :
        "This model does not support tools.";
    });
  }

  // ------------------------------------------------------------------ parameters
  function readParams() {
    var val = function (id) { var n = $(id); return n && !n.disabled ? n.value.trim() : ""; };
    var p = {};
    [["temperature", "pg-temperature"], ["top_p", "pg-top-p"], ["max_tokens", "pg-max-tokens"],
     ["seed", "pg-seed"], ["stop", "pg-stop"]].forEach(function (pair) {
      var v = val(pair[1]);
      if (v !== "") p[pair[0]] = v;
    });
    var json = $("pg-json");
    if (json && json.checked) p.json_mode = true;
    return p;
  }
  function writeParams(p) {
    p = p || {};
    var set = function (id, v) { var n = $(id); if (n && v !== undefined && v !== null) n.value = Array.isArray(v) ? v.join("\n") : v; };
    set("pg-temperature", p.temperature); set("pg-top-p", p.top_p); set("pg-max-tokens", p.max_tokens);
    set("pg-seed", p.seed); set("pg-stop", p.stop);
    if ($("pg-json")) $("pg-json").checked = !!p.json_mode;
  }

  // ------------------------------------------------------------------ SSE over fetch
  function streamChat(payload, on, signal) {
    return fetch(data.urls.chat, {
      method: "POST", credentials: "same-origin", signal: signal, body: JSON.stringify(payload),
      headers: {"Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRFToken": csrf}
    }).then(function (resp) {
      var type = resp.headers.get("Content-Type") || "";
      if (!resp.ok || type.indexOf("text/event-stream") !== 0) {
        return resp.json().catch(function () { return {}; }).then(function (body) {
          var err = body.error || {};
          var message = err.message || (resp.status === 401 ? "Your session expired: sign in again." : "HTTP " + resp.status);
          (on.error || function () {})({title: "Request refused", message: message, param: err.param, status: resp.status});
        });
      }
      var reader = resp.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function dispatch(block) {
        var event = "message", lines = [];
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event: ") === 0) event = line.slice(7);
          else if (line.indexOf("data: ") === 0) lines.push(line.slice(6));
        });
        if (!lines.length) return;
        var payload;
        try { payload = JSON.parse(lines.join("\n")); } catch (e) { return; }
        if (on[event]) on[event](payload);
      }
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { if (buffer.trim()) dispatch(buffer); return; }
          buffer += decoder.decode(r.value, {stream: true});
          var at;
          while ((at = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, at));
            buffer = buffer.slice(at + 2);
          }
          return pump();
        });
      }
      return pump();
    });
  }

  function figuresText(f) {
    if (!f) return "";
    var parts = [fmtInt(f.prompt_tokens) + " in", fmtInt(f.completion_tokens) + " out", fmtUsd(f.cost_usd),
                 fmtMs(f.latency_ms), "first token " + fmtMs(f.ttft_ms)];
    if (f.tokens_per_s) parts.push(f.tokens_per_s + " tok/s");
    return parts.join(" · ");
  }

  function figuresNode(f) {
    var box = el("div", "pg-figures");
    if (!f) return box;
    if (f.latency_ms !== undefined) box.appendChild(el("span", null, figuresText(f)));
    if (f.deployment) box.appendChild(badge(f.deployment, "pg-deploy", "Served by (attempts: " + (f.attempts || []).join(", ") + ")"));
    if (f.cache) box.appendChild(badge("cache " + f.cache, f.cache === "HIT" ? "cap-on" : "", "Response cache"));
    if (f.finish_reason && f.finish_reason !== "stop") box.appendChild(badge(f.finish_reason, "cap-warn"));
    return box;
  }

  function errorNode(e) {
    var box = el("div", "pg-error");
    box.setAttribute("role", "alert");
    box.appendChild(el("strong", null, e.title || "Error"));
    box.appendChild(el("span", null, " " + (e.message || "")));
    if (e.hint) box.appendChild(el("div", "muted small", e.hint));
    return box;
  }

  function toolCallNode(tc) {
    var box = el("div", "pg-toolcall");
    var fn = tc.function || tc;
    var head = el("div", "pg-toolcall-head");
    head.appendChild(el("span", "cap cap-on", "tool call"));
    head.appendChild(el("code", null, (fn.name || "") + "(…)"));
    if (tc.id) head.appendChild(el("span", "muted small", tc.id));
    box.appendChild(head);
    var args = fn.arguments || "";
    try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (e) { /* partial while streaming */ }
    box.appendChild(el("pre", "pg-toolcall-args", args));
    return box;
  }

  /* A streaming answer: sanitised HTML of the last render + the raw text that came since. */
  function AnswerView(container) {
    this.node = el("div", "pg-md");
    this.tail = el("span", "pg-tail");
    this.calls = el("div", "pg-toolcalls");
    container.appendChild(this.node);
    container.appendChild(this.tail);
    container.appendChild(this.calls);
    this.toolCalls = {};
  }
  AnswerView.prototype.text = function (t) { this.tail.textContent += t; };
  AnswerView.prototype.render = function (html) { this.node.innerHTML = html; this.tail.textContent = ""; };
  AnswerView.prototype.toolCall = function (tc) {
    this.toolCalls[tc.index] = {id: tc.id, type: "function", function: {name: tc.name, arguments: tc.arguments}};
    this.calls.replaceChildren();
    var self = this;
    Object.keys(this.toolCalls).sort().forEach(function (k) { self.calls.appendChild(toolCallNode(self.toolCalls[k])); });
  };
  AnswerView.prototype.calledTools = function () {
    var self = this;
    return Object.keys(this.toolCalls).sort().map(function (k) { return self.toolCalls[k]; });
  };

  // ================================================================== chat page
  function chatPage() {
    var conv = data.conversation;
    var select = $("pg-model"), info = $("pg-model-info"), thread = $("pg-thread"), empty = $("pg-empty");
    var input = $("pg-input"), send = $("pg-send"), stop = $("pg-stop");
    var state = {id: conv ? conv.id : null, messages: conv ? conv.messages : [], images: [], controller: null,
                 lastError: null};
    fillSelect(select);
    var remembered = conv ? conv.model : window.localStorage && localStorage.getItem("pg-model");
    if (remembered && models[remembered]) select.value = remembered;
    if (conv) {
      $("pg-system").value = conv.system || "";
      writeParams(conv.params);
      $("pg-tools").value = conv.tools || "";
    }
    function onModel() {
      var m = currentModel(select);
      info.replaceChildren(modelInfo(m));
      applyCapabilities(m);
      send.disabled = !m || !data.key_usable;
      if (m && window.localStorage) localStorage.setItem("pg-model", m.name);
    }
    select.addEventListener("change", onModel);
    onModel();

    function userText(m) {
      if (typeof m.content === "string") return m.content;
      return (m.content || []).filter(function (p) { return p.type === "text"; }).map(function (p) { return p.text; }).join("\n");
    }
    function userImages(m) {
      if (typeof m.content === "string") return [];
      return (m.content || []).filter(function (p) { return p.type === "image_url"; }).map(function (p) { return p.image_url.url; });
    }
    function imageNode(url) {
      if (url.indexOf("data:image/") === 0) {
        var img = el("img", "pg-image");
        img.alt = "attached image";
        img.src = url;
        return img;
      }
      var a = el("a", "link pg-image-link", "[image] " + url);
      a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer";
      return a;
    }

    function messageNode(m, i, isLast) {
      var wrap = el("div", "pg-msg pg-msg-" + m.role);
      wrap.dataset.index = i;
      var head = el("div", "pg-msg-head");
      head.appendChild(el("span", "pg-role", m.role === "user" ? "You" : m.role === "tool" ? "Tool result" : "Assistant"));
      var actions = el("span", "pg-msg-actions");
      head.appendChild(actions);
      wrap.appendChild(head);
      var body = el("div", "pg-msg-body");
      wrap.appendChild(body);
      if (m.role === "user") {
        body.appendChild(el("div", "pg-text", userText(m)));
        userImages(m).forEach(function (u) { body.appendChild(imageNode(u)); });
        var edit = el("button", "btn btn-ghost btn-sm", "Edit");
        edit.type = "button";
        edit.addEventListener("click", function () { editTurn(wrap, i); });
        actions.appendChild(edit);
      } else if (m.role === "tool") {
        body.appendChild(el("div", "muted small", m.tool_call_id));
        body.appendChild(el("pre", "pg-toolcall-args", m.content));
      } else {
        var md = el("div", "pg-md");
        if (m.html) md.innerHTML = m.html;  // sanitised by the server
        else md.textContent = m.content || "";
        body.appendChild(md);
        (m.tool_calls || []).forEach(function (tc) { body.appendChild(toolCallNode(tc)); });
        if (m.meta && m.meta.error) body.appendChild(errorNode({title: m.meta.error, message: ""}));
        wrap.appendChild(figuresNode(m.meta));
        if (isLast && (m.tool_calls || []).length) body.appendChild(toolResultForm(m.tool_calls));
        if (isLast) {
          var regen = el("button", "btn btn-ghost btn-sm", "Regenerate");
          regen.type = "button";
          regen.addEventListener("click", regenerate);
          actions.appendChild(regen);
        }
      }
      return wrap;
    }

    function toolResultForm(calls) {
      var box = el("div", "pg-toolresult");
      calls.forEach(function (tc) {
        var label = el("label", "small", "Result for " + ((tc.function || {}).name || "tool") + " (" + tc.id + ")");
        var area = el("textarea", "input pg-mono");
        area.rows = 2;
        area.dataset.callId = tc.id;
        area.placeholder = '{"result": "…"}';
        box.appendChild(label);
        box.appendChild(area);
      });
      var btn = el("button", "btn btn-sm btn-primary", "Send tool results");
      btn.type = "button";
      btn.addEventListener("click", function () {
        var results = box.querySelectorAll("textarea");
        results.forEach(function (area) {
          state.messages.push({role: "tool", tool_call_id: area.dataset.callId, content: area.value || ""});
        });
        ask();
      });
      box.appendChild(btn);
      return box;
    }

    function renderThread() {
      thread.replaceChildren();
      if (!state.messages.length && !state.lastError) { thread.appendChild(empty); return; }
      state.messages.forEach(function (m, i) { thread.appendChild(messageNode(m, i, i === state.messages.length - 1)); });
      if (state.lastError) thread.appendChild(errorNode(state.lastError));
      thread.scrollTop = thread.scrollHeight;
    }

    function editTurn(wrap, i) {
      if (state.controller) return;
      var m = state.messages[i];
      var body = wrap.querySelector(".pg-msg-body");
      body.replaceChildren();
      var area = el("textarea", "input pg-edit");
      area.value = userText(m);
      area.rows = Math.min(12, Math.max(2, area.value.split("\n").length));
      body.appendChild(area);
      var bar = el("div", "pg-edit-bar");
      var save = el("button", "btn btn-primary btn-sm", "Save & send");
      save.type = "button";
      var cancel = el("button", "btn btn-ghost btn-sm", "Cancel");
      cancel.type = "button";
      bar.appendChild(save); bar.appendChild(cancel);
      body.appendChild(bar);
      area.focus();
      cancel.addEventListener("click", renderThread);
      save.addEventListener("click", function () {
        var images = userImages(m);
        var text = area.value;
        if (!text.trim() && !images.length) return;
        state.messages = state.messages.slice(0, i);
        state.messages.push({role: "user", content: contentOf(text, images)});
        ask();
      });
    }

    function regenerate() {
      if (state.controller) return;
      while (state.messages.length && state.messages[state.messages.length - 1].role === "assistant") state.messages.pop();
      if (state.messages.length) ask();
    }

    function contentOf(text, images) {
      if (!images.length) return text;
      var parts = [];
      if (text) parts.push({type: "text", text: text});
      images.forEach(function (u) { parts.push({type: "image_url", image_url: {url: u}}); });
      return parts;
    }

    function payload(messages) {
      return {model: select.value, system: $("pg-system").value, messages: messages, params: readParams(),
              tools: $("pg-tools").disabled ? "" : $("pg-tools").value, conversation_id: state.id,
              no_cache: $("pg-no-cache").checked};
    }

    function busy(on) {
      send.hidden = on; stop.hidden = !on;
      input.disabled = false;
      root.classList.toggle("is-busy", on);
    }

    function ask() {
      showError("");
      state.lastError = null;
      renderThread();
      var holder = el("div", "pg-msg pg-msg-assistant is-streaming");
      var head = el("div", "pg-msg-head");
      head.appendChild(el("span", "pg-role", "Assistant"));
      head.appendChild(el("span", "pg-typing", "…"));
      holder.appendChild(head);
      var body = el("div", "pg-msg-body");
      holder.appendChild(body);
      if (empty.parentNode) empty.remove();
      thread.appendChild(holder);
      thread.scrollTop = thread.scrollHeight;
      var view = new AnswerView(body);
      var answer = {role: "assistant", content: "", tool_calls: null, meta: null, html: null};
      var failed = null, stopped = false;
      var controller = state.controller = new AbortController();
      busy(true);
      setStatus("Waiting for the first token…");
      var started = performance.now();
      streamChat(payload(state.messages), {
        start: function (d) {
          if (d.conversation_id && d.conversation_id !== state.id) {
            state.id = d.conversation_id;
            history.replaceState(null, "", data.urls.page + "?c=" + d.conversation_id);
          }
        },
        delta: function (d) {
          if (d.text) { answer.content += d.text; view.text(d.text); setStatus("Streaming…"); }
          (d.tool_calls || []).forEach(function (tc) { view.toolCall(tc); });
          thread.scrollTop = thread.scrollHeight;
        },
        render: function (d) { answer.html = d.html; view.render(d.html); },
        error: function (e) {
          failed = e;
          if (e.param && e.status === 400) showError(e.message);
        },
        done: function (f) { answer.meta = f; }
      }, controller.signal).catch(function (err) {
        if (err && err.name === "AbortError") stopped = true;
        else failed = {title: "Connection lost", message: String(err && err.message || err)};
      }).then(function () {
        state.controller = null;
        busy(false);
        var calls = view.calledTools();
        if (calls.length) answer.tool_calls = calls; else delete answer.tool_calls;
        if (answer.content || calls.length) {
          if (!answer.content) answer.content = null;
          if (stopped) answer.meta = {finish_reason: "stopped"};
          if (failed) answer.meta = Object.assign(answer.meta || {}, {error: failed.title});
          state.messages.push(answer);
          if (failed) state.lastError = failed;
        } else if (failed) {
          state.lastError = failed;
        } else if (stopped) {
          state.lastError = {title: "Stopped", message: "before the first token."};
        }
        setStatus(stopped ? "Stopped after " + fmtMs(performance.now() - started) : "");
        renderThread();
        if (window.htmx) htmx.trigger(document.body, "pg:saved");
        updateExportLink();
      });
    }

    function updateExportLink() {
      var link = $("pg-export-json");
      if (state.id && !link) {
        link = el("a", "btn btn-ghost btn-sm", "JSON");
        link.id = "pg-export-json";
        link.setAttribute("download", "");
        document.querySelector(".pg-toolbar-actions").prepend(link);
      }
      if (link && state.id) link.href = data.urls.page + "/conversations/" + state.id + "/export.json";
    }

    function composed() {
      var text = input.value;
      var images = state.images.map(function (i) { return i.url; });
      var url = $("pg-image-url");
      if (url && !url.disabled && url.value.trim()) images.push(url.value.trim());
      return {text: text, images: images};
    }

    $("pg-composer").addEventListener("submit", function (event) {
      event.preventDefault();
      if (state.controller || !select.value) return;
      var c = composed();
      if (!c.text.trim() && !c.images.length) {
        var last = state.messages[state.messages.length - 1];
        if (last && last.role !== "assistant") ask();  // re-send after an error
        return;
      }
      state.messages.push({role: "user", content: contentOf(c.text, c.images)});
      input.value = "";
      state.images = [];
      if ($("pg-image-url")) $("pg-image-url").value = "";
      drawAttachments();
      ask();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("pg-composer").requestSubmit();
      }
    });
    stop.addEventListener("click", function () { if (state.controller) state.controller.abort(); });
    $("pg-clear").addEventListener("click", function () {
      if (state.controller) state.controller.abort();
      state.id = null; state.messages = []; state.lastError = null;
      history.replaceState(null, "", data.urls.page);
      var link = $("pg-export-json");
      if (link) link.remove();
      renderThread();
      input.focus();
    });

    // images
    function drawAttachments() {
      var box = $("pg-attachments");
      box.replaceChildren();
      box.hidden = !state.images.length;
      state.images.forEach(function (img, idx) {
        var chip = el("span", "pg-chip");
        var thumb = el("img", "pg-thumb");
        thumb.src = img.url; thumb.alt = "";
        chip.appendChild(thumb);
        chip.appendChild(el("span", "small", img.name));
        var x = el("button", "btn btn-icon btn-ghost btn-sm", "×");
        x.type = "button";
        x.setAttribute("aria-label", "Remove " + img.name);
        x.addEventListener("click", function () { state.images.splice(idx, 1); drawAttachments(); });
        chip.appendChild(x);
        box.appendChild(chip);
      });
    }
    $("pg-image-file").addEventListener("change", function (event) {
      var file = event.target.files[0];
      event.target.value = "";
      if (!file) return;
      if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) { showError("Images must be PNG, JPEG, GIF or WebP."); return; }
      if (file.size > 8 * 1024 * 1024) { showError("Images may be at most 8 MB."); return; }
      var reader = new FileReader();
      reader.onload = function () { state.images.push({name: file.name, url: reader.result}); drawAttachments(); showError(""); };
      reader.readAsDataURL(file);
    });

    // code snippets
    var dialog = $("pg-snippet"), code = $("pg-snippet-code"), snippets = null, tab = "curl";
    function showTab(name) {
      tab = name;
      dialog.querySelectorAll("[data-snippet-tab]").forEach(function (b) { b.classList.toggle("is-active", b.dataset.snippetTab === name); });
      if (snippets) code.value = name === "json" ? JSON.stringify(snippets.request, null, 2) : snippets[name];
    }
    $("pg-snippet-btn").addEventListener("click", function () {
      var c = composed();
      var messages = state.messages.slice();
      if (c.text.trim() || c.images.length) messages.push({role: "user", content: contentOf(c.text, c.images)});
      while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
      if (!messages.length) messages.push({role: "user", content: "Hello!"});
      code.value = "…";
      dialog.showModal();
      fetch(data.urls.snippet, {method: "POST", credentials: "same-origin", body: JSON.stringify(payload(messages)),
                                headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}})
        .then(function (r) { return r.json(); })
        .then(function (body) {
          if (body.error) { snippets = null; code.value = "Cannot build the request: " + body.error.message; return; }
          snippets = body; showTab(tab);
        });
    });
    dialog.addEventListener("click", function (event) {
      var t = event.target.closest("[data-snippet-tab]");
      if (t) showTab(t.dataset.snippetTab);
      if (event.target.closest("[data-close-dialog]")) dialog.close();
    });

    renderThread();
    updateExportLink();
    if (state.messages.length && state.messages[state.messages.length - 1].role !== "assistant") {
      state.lastError = {title: "No answer saved", message: "for your last message.", hint: "Press Send to ask again."};
      renderThread();
    }
  }

  // ================================================================== compare page
  function comparePage() {
    var selects = Array.prototype.slice.call(document.querySelectorAll("[data-compare-slot]"));
    var cols = $("pg-compare-cols"), results = $("pg-compare-results"), tbody = document.querySelector("#pg-compare-table tbody");
    var controllers = [];
    selects.forEach(function (s, i) {
      fillSelect(s);
      var names = Object.keys(models);
      if (!s.hasAttribute("data-optional") && names[i]) s.value = names[i];
    });
    function busy(on) { $("pg-send").hidden = on; $("pg-stop").hidden = !on; }
    $("pg-stop").addEventListener("click", function () { controllers.forEach(function (c) { c.abort(); }); });

    $("pg-compare-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (controllers.length) return;
      showError("");
      var chosen = [];
      selects.forEach(function (s) { if (s.value && chosen.indexOf(s.value) < 0) chosen.push(s.value); });
      var prompt = $("pg-input").value;
      if (chosen.length < 2) { showError("Pick at least two different models."); return; }
      if (!prompt.trim()) { showError("Write a prompt first."); return; }
      var params = {};
      if ($("pg-temperature").value) params.temperature = $("pg-temperature").value;
      if ($("pg-max-tokens").value) params.max_tokens = $("pg-max-tokens").value;
      cols.replaceChildren();
      tbody.replaceChildren();
      results.hidden = false;
      cols.className = "pg-compare-cols cols-" + chosen.length;
      busy(true);
      setStatus("Streaming from " + chosen.length + " models…");
      var pending = chosen.map(function (name) {
        var col = el("section", "card pg-compare-col");
        col.dataset.model = name;
        var head = el("div", "pg-compare-head");
        head.appendChild(el("strong", null, name));
        head.appendChild(modelInfo(models[name]));
        col.appendChild(head);
        var body = el("div", "pg-msg-body pg-compare-body");
        col.appendChild(body);
        var foot = el("div", "pg-compare-foot");
        col.appendChild(foot);
        cols.appendChild(col);
        var row = el("tr");
        row.dataset.model = name;
        [name, "…", "…", "…", "…", "…", "…", "…", "streaming"].forEach(function (t, k) {
          row.appendChild(el("td", k >= 2 && k <= 6 ? "num" : null, t));
        });
        tbody.appendChild(row);
        var view = new AnswerView(body);
        var controller = new AbortController();
        controllers.push(controller);
        var outcome = "ok", figures = null;
        return streamChat({model: name, system: $("pg-system").value, save: false, params: params,
                           no_cache: $("pg-no-cache").checked,
                           messages: [{role: "user", content: prompt}]}, {
          delta: function (d) {
            if (d.text) view.text(d.text);
            (d.tool_calls || []).forEach(function (tc) { view.toolCall(tc); });
          },
          render: function (d) { view.render(d.html); },
          error: function (e) { outcome = e.title; body.appendChild(errorNode(e)); },
          done: function (f) { figures = f; }
        }, controller.signal).catch(function (err) {
          outcome = err && err.name === "AbortError" ? "stopped" : "connection lost";
        }).then(function () {
          col.classList.add("is-done");
          if (figures) foot.appendChild(figuresNode(figures));
          var f = figures || {};
          var cells = row.children;
          cells[1].textContent = f.deployment || "–";
          cells[2].textContent = fmtMs(f.ttft_ms);
          cells[3].textContent = fmtMs(f.latency_ms);
          cells[4].textContent = figures ? fmtInt(f.prompt_tokens) + " / " + fmtInt(f.completion_tokens) : "–";
          cells[5].textContent = f.tokens_per_s ? String(f.tokens_per_s) : "–";
          cells[6].textContent = figures ? fmtUsd(f.cost_usd) : "–";
          cells[7].textContent = f.cache || "–";
          cells[8].textContent = outcome;
          row.classList.toggle("is-error", outcome !== "ok");
        });
      });
      Promise.all(pending).then(function () { controllers = []; busy(false); setStatus(""); });
    });
  }

  if (root.dataset.playground === "chat") chatPage();
  else if (root.dataset.playground === "compare") comparePage();
})();
