/* Usage charts: Chart.js 4 reads the JSON block of the dashboard fragment
   (<script type="application/json" id="usage-chart-data">) and draws one chart per
   <canvas data-chart="…">. Runs on page load and again after every htmx swap or history
   restore; the old charts are destroyed before their canvases leave the page.
   The "Table" buttons swap a chart for the same numbers as a table (remembered per tab). */
(function () {
  "use strict";

  var DATA_ID = "usage-chart-data";
  var TABLES_KEY = "usage.tables";
  var drawn = typeof WeakSet === "function" ? new WeakSet() : null;

  // ---------------------------------------------------------------- number formats
  function trim(n, digits) {
    return n.toFixed(digits).replace(/\.0+$/, "").replace(/(\.\d*?)0+$/, "$1");
  }

  function compact(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return trim(v / 1e9, 1) + "B";
    if (a >= 1e6) return trim(v / 1e6, 1) + "M";
    if (a >= 1e4) return trim(v / 1e3, 0) + "k";
    if (a >= 1e3) return trim(v / 1e3, 1) + "k";
    return String(Math.round(v * 100) / 100);
  }

  function usd(v, axis) {
    var a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 1000) return "$" + compact(v);
    if (a >= 1) return "$" + v.toFixed(axis ? 0 : 2);
    if (a >= 0.01) return "$" + v.toFixed(axis ? 2 : 3);
    return "$" + v.toPrecision(2);
  }

  function format(unit, v, axis) {
    if (v === null || v === undefined || isNaN(v)) return "—";
    if (unit === "usd") return usd(v, axis);
    if (unit === "pct") return trim(v, v < 10 ? 2 : 1) + "%";
    if (unit === "ms") return v >= 1000 ? trim(v / 1000, v >= 10000 ? 0 : 1) + " s" : Math.round(v) + " ms";
    return axis ? compact(v) : Math.round(v).toLocaleString("en-US");
  }

  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16 & 255) + ", " + (n >> 8 & 255) + ", " + (n & 255) + ", " + a + ")";
  }

  // ---------------------------------------------------------------- chart config
  function config(spec) {
    var line = spec.kind === "line";
    var stacked = !!spec.stacked;
    var fmt = function (v, axis) { return format(spec.unit, v, axis); };
    var datasets = spec.datasets.map(function (d) {
      var ds = { label: d.label, data: d.data, borderColor: d.color,
                 backgroundColor: line ? alpha(d.color, 0.10) : d.color };
      if (line) {
        ds.borderWidth = 2;
        ds.pointRadius = 0;
        ds.pointHoverRadius = 4;
        ds.pointHitRadius = 8;
        ds.cubicInterpolationMode = "monotone";  // smooth, but never dips below 0 %
        ds.pointStyle = "line";
        ds.fill = d.fill ? "origin" : false;
        ds.spanGaps = false;
        if (d.dash) ds.borderDash = [5, 4];
      } else {
        ds.borderWidth = 0;
        ds.borderRadius = 2;
        ds.maxBarThickness = 32;
        ds.categoryPercentage = 0.8;
        ds.barPercentage = 0.9;
      }
      return ds;
    });
    return {
      type: line ? "line" : "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        layout: { padding: { top: 4, right: 4 } },
        plugins: {
          legend: {
            display: spec.datasets.length > 1, position: "bottom", align: "start",
            labels: line ? { usePointStyle: true, pointStyleWidth: 22, boxHeight: 8, padding: 14 }
                         : { boxWidth: 10, boxHeight: 10, padding: 14, useBorderRadius: true, borderRadius: 2 }
          },
          tooltip: {
            backgroundColor: "#101828", padding: 10, boxPadding: 4, cornerRadius: 6,
            callbacks: {
              title: function (items) { return items.length ? spec.titles[items[0].dataIndex] : ""; },
              label: function (item) { return " " + item.dataset.label + ": " + fmt(item.parsed.y); },
              footer: stacked && spec.datasets.length > 1 ? function (items) {
                var sum = 0;
                items.forEach(function (i) { sum += i.parsed.y || 0; });
                return "Total: " + fmt(sum);
              } : undefined
            }
          }
        },
        scales: {
          x: { stacked: stacked, grid: { display: false }, border: { color: "#e4e7ec" },
               ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 } },
          y: { stacked: stacked, beginAtZero: true, grace: "5%", border: { display: false },
               grid: { color: "#eef0f3" },
               ticks: { maxTicksLimit: 5, callback: function (v) { return fmt(v, true); } } }
        }
      }
    };
  }

  // ---------------------------------------------------------------- draw / destroy
  function destroyIn(root) {
    if (!window.Chart || !root || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  function draw() {
    var block = document.getElementById(DATA_ID);
    if (!block || !window.Chart || (drawn && drawn.has(block))) return;
    var specs;
    try { specs = JSON.parse(block.textContent); } catch (e) { return; }
    var font = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.font.family = font;
    window.Chart.defaults.font.size = 12;
    window.Chart.defaults.color = "#667085";
    specs.forEach(function (spec) {
      var canvas = document.querySelector('canvas[data-chart="' + spec.id + '"]');
      if (!canvas) return;
      var old = window.Chart.getChart(canvas);
      if (old) old.destroy();
      new window.Chart(canvas, config(spec));
    });
    if (drawn) drawn.add(block);
    restoreTables();
  }

  // ---------------------------------------------------------------- table toggles
  function savedTables() {
    try { return JSON.parse(sessionStorage.getItem(TABLES_KEY) || "[]"); } catch (e) { return []; }
  }

  function showTable(card, button, on) {
    var box = card.querySelector(".chart-box");
    var table = card.querySelector(".chart-table");
    if (!box || !table) return;
    box.hidden = on;
    table.hidden = !on;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    card.classList.toggle("is-table", on);
  }

  function restoreTables() {
    var saved = savedTables();
    document.querySelectorAll("[data-chart-toggle]").forEach(function (button) {
      var card = document.getElementById(button.getAttribute("data-chart-toggle"));
      if (card) showTable(card, button, saved.indexOf(card.id) !== -1);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-chart-toggle]");
    if (!button) return;
    var card = document.getElementById(button.getAttribute("data-chart-toggle"));
    if (!card) return;
    var on = button.getAttribute("aria-pressed") !== "true";
    showTable(card, button, on);
    var saved = savedTables().filter(function (id) { return id !== card.id; });
    if (on) saved.push(card.id);
    try { sessionStorage.setItem(TABLES_KEY, JSON.stringify(saved)); } catch (e) { /* private mode */ }
  });

  // ---------------------------------------------------------------- lifecycle
  document.addEventListener("htmx:beforeSwap", function (event) { destroyIn(event.detail.target); });
  document.addEventListener("htmx:beforeHistorySave", function () { destroyIn(document.body); });
  document.addEventListener("htmx:afterSettle", draw);
  document.addEventListener("htmx:historyRestore", draw);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
