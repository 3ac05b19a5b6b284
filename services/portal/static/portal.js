// FactoryChain portal: charts (uPlot) and live updates (SSE). No inline
// scripts: the pages carry data-* attributes and this file does the rest.
(function () {
  "use strict";
  var charts = {}; // metric -> {plot, data}

  function fmt(v) { return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000); }

  function draw(el, xs, ys, label) {
    var width = Math.max(280, el.clientWidth || 600);
    var opts = { width: width, height: 220, series: [{}, { label: label, stroke: "#2456d3", width: 1.5 }], scales: { x: { time: true } } };
    var data = [xs, ys];
    var plot = new uPlot(opts, data, el);
    return { plot: plot, data: data };
  }

  function loadChart(el) {
    var m = el.dataset.machine, x = el.dataset.metric;
    var step = el.dataset.step || "0";
    var end = el.dataset.end || String(Date.now() + 1000);
    var start = el.dataset.start || String(Number(end) - 3600000);
    var url = "/api/v1/series/" + encodeURIComponent(m) + "/" + encodeURIComponent(x) + "?start_ms=" + start + "&end_ms=" + end + "&step_ms=" + step;
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (j) {
      var xs = [], ys = [];
      if (Number(step) > 0) {
        var agg = el.dataset.agg || "avg";
        (j.buckets || []).forEach(function (b) { xs.push(b.t / 1000); ys.push(b[agg]); });
      } else {
        (j.readings || []).forEach(function (p) { xs.push(p.t / 1000); ys.push(p.v); });
      }
      charts[x] = draw(el, xs, ys, x + (j.unit ? " (" + j.unit + ")" : ""));
    }).catch(function () { el.textContent = "chart unavailable"; });
  }

  function live(table) {
    var es = new EventSource(table.dataset.live);
    es.addEventListener("readings", function (ev) {
      JSON.parse(ev.data).forEach(function (r) {
        var row = table.querySelector('tr[data-metric="' + CSS.escape(r.metric) + '"]');
        if (!row) {
          row = document.createElement("tr");
          row.dataset.metric = r.metric;
          ["metric", "value", "unit", "ts"].forEach(function (k) {
            var td = document.createElement("td");
            if (k !== "metric" && k !== "unit") td.dataset.role = k;
            row.appendChild(td);
          });
          row.children[0].textContent = r.metric;
          row.children[1].className = "big";
          table.querySelector("tbody").appendChild(row);
        }
        var ts = row.querySelector('[data-role="ts"]');
        if (Number(ts.dataset.ts) >= r.t) return; // not newer than what is shown (the snapshot repeats live values)
        row.querySelector('[data-role="value"]').textContent = fmt(r.v);
        row.children[2].textContent = r.unit;
        ts.textContent = new Date(r.t).toLocaleTimeString();
        ts.dataset.ts = r.t;
        var c = charts[r.metric];
        if (c) { c.data[0].push(r.t / 1000); c.data[1].push(r.v); c.plot.setData(c.data); }
      });
    });
    table.dataset.connected = "1";
    es.onopen = function () { table.dataset.connected = "open"; };
  }

  // The alarms page: on any alarm event, fetch the page again and swap the list in.
  function liveAlarms(section) {
    var es = new EventSource(section.dataset.live), pending = null;
    es.addEventListener("alarm", function () {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("alarms-section");
          if (next) { section.innerHTML = next.innerHTML; section.dataset.updated = String(Date.now()); }
        });
      }, 300);
    });
    es.onopen = function () { section.dataset.connected = "open"; };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var alarms = document.getElementById("alarms-section");
    if (alarms) liveAlarms(alarms);
    document.querySelectorAll('td[data-role="ts"][data-ts]').forEach(function (td) { td.textContent = new Date(Number(td.dataset.ts)).toLocaleTimeString(); });
    document.querySelectorAll("[data-chart]").forEach(loadChart);
    var t = document.getElementById("live-table");
    if (t) live(t);
  });
})();
