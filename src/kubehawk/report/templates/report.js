// kubehawk report: filters, sorting, row details and the theme switch. No network, no libraries.
(function () {
  "use strict";
  var $ = function (s) { return document.querySelector(s); };
  var $$ = function (s) { return Array.prototype.slice.call(document.querySelectorAll(s)); };
  var root = document.documentElement;

  // --- theme: auto (the system's), light or dark; remembered where storage is allowed
  function setTheme(t) {
    root.setAttribute("data-theme", t);
    $$("[data-theme-set]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.themeSet === t)); });
    try { localStorage.setItem("kubehawk-theme", t); } catch (e) { /* file:// may refuse storage */ }
  }
  var saved = null;
  try { saved = localStorage.getItem("kubehawk-theme"); } catch (e) { saved = null; }
  setTheme(saved || "auto");
  $$("[data-theme-set]").forEach(function (b) { b.addEventListener("click", function () { setTheme(b.dataset.themeSet); }); });

  // --- filters
  var table = $("#alert-table");
  if (!table) { return; }
  var bodies = $$("#alert-table tbody.alert");
  var f = { level: $("#f-level"), rule: $("#f-rule"), user: $("#f-user"), ns: $("#f-ns"), text: $("#f-text") };
  function apply() {
    var want = { level: f.level.value, rule: f.rule.value, user: f.user.value, ns: f.ns.value };
    var text = f.text.value.trim().toLowerCase();
    var shown = 0;
    bodies.forEach(function (b) {
      var ok = (!want.level || b.dataset.level === want.level) && (!want.rule || b.dataset.rule === want.rule) &&
        (!want.user || b.dataset.user === want.user) && (!want.ns || b.dataset.ns === want.ns) &&
        (!text || b.textContent.toLowerCase().indexOf(text) >= 0);
      b.hidden = !ok;
      if (ok) { shown += 1; }
    });
    $("#shown-count").textContent = shown + " of " + bodies.length + " shown";
    $("#no-rows").hidden = shown !== 0;
    $$("[data-level-chip]").forEach(function (c) { c.setAttribute("aria-pressed", String(c.dataset.levelChip === want.level)); });
  }
  ["level", "rule", "user", "ns"].forEach(function (k) { f[k].addEventListener("change", apply); });
  f.text.addEventListener("input", apply);
  $("#f-clear").addEventListener("click", function () {
    ["level", "rule", "user", "ns", "text"].forEach(function (k) { f[k].value = ""; });
    apply();
  });
  $$("[data-level-chip]").forEach(function (c) {
    c.addEventListener("click", function () {
      f.level.value = f.level.value === c.dataset.levelChip ? "" : c.dataset.levelChip;
      apply();
      table.scrollIntoView({ block: "start" });
    });
  });

  // --- sorting: click a header; again to reverse
  var keys = { time: "time", level: "rank", rule: "rule", user: "user", ns: "ns", target: "target", ip: "ip" };
  $$("#alert-table th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = keys[th.dataset.sort];
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      $$("#alert-table th[data-sort]").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      bodies.sort(function (a, b) {
        var x = a.dataset[key], y = b.dataset[key];
        var c = x < y ? -1 : x > y ? 1 : Number(a.dataset.i) - Number(b.dataset.i);
        return c * dir;
      });
      bodies.forEach(function (b) { table.appendChild(b); });
    });
  });

  // --- a row opens its message, triage advice and raw event
  function toggle(b) {
    var row = b.querySelector("tr.row"), detail = b.querySelector("tr.detail");
    detail.hidden = !detail.hidden;
    row.setAttribute("aria-expanded", String(!detail.hidden));
  }
  bodies.forEach(function (b) {
    var row = b.querySelector("tr.row");
    row.addEventListener("click", function (e) { if (e.target.tagName !== "A") { toggle(b); } });
    row.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(b); } });
  });
  apply();
})();
