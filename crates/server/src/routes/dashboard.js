"use strict";
// Polls /dashboard/summary and renders it. Text goes in through textContent only.
(function () {
  var REFRESH_MS = 10000;

  function text(el, value) { el.textContent = String(value); }

  function row(tbody, cells, attrs) {
    var tr = document.createElement("tr");
    for (var key in attrs) { tr.setAttribute(key, attrs[key]); }
    cells.forEach(function (c) {
      var td = document.createElement("td");
      if (typeof c === "number") { td.className = "num"; }
      td.textContent = String(c);
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }

  function fill(id, items, toRow) {
    var tbody = document.getElementById(id);
    tbody.replaceChildren();
    if (items.length === 0) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.className = "empty"; td.colSpan = 5; td.textContent = "none";
      tr.appendChild(td); tbody.appendChild(tr);
      return;
    }
    items.forEach(function (item) { toRow(tbody, item); });
  }

  function render(s) {
    text(document.getElementById("window"), Math.round(s.window_seconds / 60) + " min");
    text(document.getElementById("generated"), s.generated_at);
    text(document.getElementById("requests"), s.requests);
    text(document.getElementById("truncated"), s.truncated ? "(latest records only)" : "");
    ["allow", "warn", "block"].forEach(function (d) {
      text(document.querySelector('[data-figure="' + d + '"]'), s.decisions[d]);
    });
    text(document.querySelector('[data-figure="rate-limited"]'), s.rate_limit.rejected);
    fill("reasons", s.top_reasons, function (tb, r) {
      row(tb, [r.reason, r.count], { "data-reason": r.reason, "data-count": r.count });
    });
    fill("tenants", s.blocked_tenants, function (tb, t) {
      row(tb, [t.name || t.tenant_id, t.blocked, t.warned, t.last_blocked_at],
        { "data-tenant": t.tenant_id, "data-blocked": t.blocked, "data-warned": t.warned });
    });
    var limits = Object.keys(s.rate_limit.by_limit_since_start).map(function (k) {
      return { limit: k, count: s.rate_limit.by_limit_since_start[k] };
    });
    fill("limits", limits, function (tb, l) {
      row(tb, [l.limit, l.count], { "data-limit": l.limit, "data-count": l.count });
    });
    fill("recent", s.recent, function (tb, e) {
      row(tb, [e.at, e.tenant_id || "(gateway)", e.decision + (e.enforced ? "" : " (monitor)"), e.score, e.reasons.join(", ")],
        { "data-decision": e.decision });
    });
  }

  function load() {
    // An absolute URL without user info: a page opened as http://user:key@host/ may not
    // fetch URLs carrying credentials; the browser re-sends its Basic auth by itself.
    var url = new URL("/dashboard/summary", window.location.origin);
    fetch(url.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (s) {
        render(s);
        text(document.getElementById("error"), "");
        document.body.setAttribute("data-state", "ready");
      })
      .catch(function (e) {
        text(document.getElementById("error"), "could not load: " + e.message);
        document.body.setAttribute("data-state", "error");
      })
      .finally(function () { setTimeout(load, REFRESH_MS); });
  }

  load();
})();
