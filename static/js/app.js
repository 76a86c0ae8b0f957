/* Console behaviour that htmx does not cover: copy buttons, select-all, dismissible alerts,
   and readable messages when an htmx request fails. No inline scripts anywhere. */
(function () {
  "use strict";

  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "error");
    el.setAttribute("role", "alert");
    el.textContent = message;
    box.appendChild(el);
    setTimeout(function () { el.classList.add("is-leaving"); }, 5000);
    setTimeout(function () { el.remove(); }, 5600);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy") ? resolve() : reject(); } catch (e) { reject(e); }
      area.remove();
    });
  }

  // Sizes and colours computed by the server arrive as data-width/-height/-left (percent) and
  // data-bg (a colour) instead of style="" attributes, which the Content-Security-Policy
  // (style-src 'self') blocks; setting them through the CSSOM is allowed.
  var GEOMETRY = "[data-width],[data-height],[data-left],[data-bg]";
  function applyGeometry(root) {
    var nodes = Array.prototype.slice.call(root.querySelectorAll ? root.querySelectorAll(GEOMETRY) : []);
    if (root.matches && root.matches(GEOMETRY)) nodes.push(root);
    nodes.forEach(function (node) {
      var d = node.dataset;
      if (d.width !== undefined) node.style.width = parseFloat(d.width) + "%";
      if (d.height !== undefined) node.style.height = parseFloat(d.height) + "%";
      if (d.left !== undefined) node.style.left = parseFloat(d.left) + "%";
      if (d.bg !== undefined && /^#[0-9a-fA-F]{3,8}$/.test(d.bg)) node.style.background = d.bg;
    });
  }
  applyGeometry(document);
  document.addEventListener("htmx:load", function (event) { applyGeometry(event.detail.elt || document); });

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (!source) return;
      source.select && source.select();
      var label = copy.querySelector("span") || copy;
      copyText(source.value || source.textContent).then(function () {
        label.textContent = "Copied";
        copy.classList.add("is-done");
        setTimeout(function () { label.textContent = "Copy"; copy.classList.remove("is-done"); }, 2000);
      }, function () { toast("Copy failed: select the key and press Ctrl+C.", "warning"); });
      return;
    }
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) {
      var alert = dismiss.closest(".alert");
      if (alert) alert.remove();
      return;
    }
    if (event.target.closest("[data-back]")) {
      history.length > 1 ? history.back() : (window.location.href = "/");
    }
  });

  // Filter forms (usage, request log) reload on any change except the custom-range inputs
  // (data-manual: applied with the button). A plain event instead of an htmx trigger filter,
  // which htmx would have to eval (the CSP allows no eval).
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-filters]");
    if (!form || event.target.matches("[data-manual]") || !window.htmx) return;
    window.htmx.trigger(form, "filters-change");
  });

  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-check-all]");
    if (!all) return;
    var name = all.getAttribute("data-check-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]:not(:disabled)').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  // Model form: the upstream id asks the server for list prices (#price-fields is swapped).
  // A reply that arrives after the admin typed in a price field would replace their typing,
  // so it is dropped and asked for again with the values as they are now.
  var priceEditedAt = 0;
  document.addEventListener("input", function (event) {
    if (event.target.closest && event.target.closest("#price-fields")) priceEditedAt = Date.now();
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.target && event.detail.target.id === "price-fields") event.detail.xhr.sentAt = Date.now();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "price-fields") return;
    if (priceEditedAt >= (event.detail.xhr.sentAt || 0)) {
      event.detail.shouldSwap = false;
      var source = document.getElementById("model_id");
      if (source && window.htmx) window.htmx.trigger(source, "prices-refresh");
    }
  });

  // htmx does not swap 4xx/5xx responses: say what went wrong instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr, message = "Request failed (HTTP " + xhr.status + ").";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var text = doc.querySelector(".error-message");
      if (text && text.textContent.trim()) message = text.textContent.trim();
    } catch (e) { /* keep the generic message */ }
    toast(message, "error");
  });
  document.addEventListener("htmx:sendError", function (event) {
    var polling = ["health-table", "key-spend"];
    if (event.detail.elt && polling.indexOf(event.detail.elt.id) !== -1) return; // polling retries by itself
    toast("The console could not reach the server. Check your connection.", "error");
  });
})();
