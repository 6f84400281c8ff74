// KK99 — the site's shared front-end parts: number formatter, toasts, tabs, copy buttons,
// table search/sort. No inline scripts or styles anywhere (CSP): behaviour hangs on data-*
// attributes and classes. The trading page adds static/js/trade.js on top.
(function () {
  "use strict";

  // --- numbers: the same rules as kk99/numbers.py (exact: decimal strings, no floats) --------
  function splitDecimal(value) {
    var s = String(value == null ? "" : value).trim();
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null;
    var neg = s.charAt(0) === "-";
    s = s.replace(/^[-+]/, "");
    var exp = 0;
    var e = s.search(/[eE]/);
    if (e >= 0) { exp = Number(s.slice(e + 1)); s = s.slice(0, e); }
    var dot = s.indexOf(".");
    var intPart = dot < 0 ? s : s.slice(0, dot);
    var frac = dot < 0 ? "" : s.slice(dot + 1);
    var digits = intPart + frac;
    var point = intPart.length + exp; // position of the decimal point within digits
    if (point < 0) { digits = new Array(-point + 1).join("0") + digits; point = 0; }
    if (point > digits.length) { digits = digits + new Array(point - digits.length + 1).join("0"); }
    return { neg: neg, int: digits.slice(0, point).replace(/^0+(?=\d)/, "") || "0", frac: digits.slice(point) };
  }

  function group(intPart) {
    return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function addOne(digits) { // "0999" -> "1000" (decimal string increment)
    var out = "", carry = 1;
    for (var i = digits.length - 1; i >= 0; i--) {
      var d = Number(digits.charAt(i)) + carry;
      carry = d > 9 ? 1 : 0;
      out = String(d % 10) + out;
    }
    return carry ? "1" + out : out;
  }

  // A market column at its precision, rounded half-even: fmt("60000", 2) === "60,000.00".
  function fmt(value, places) {
    var p = splitDecimal(value);
    places = Number(places || 0);
    if (!p) return "—";
    var frac = (p.frac + new Array(places + 2).join("0"));
    var kept = p.int + frac.slice(0, places);
    var rest = frac.slice(places).replace(/0+$/, "");
    var first = rest.charAt(0);
    var roundUp = first > "5" || (first === "5" && (rest.length > 1 || Number(kept.charAt(kept.length - 1)) % 2 === 1));
    if (roundUp) kept = addOne(kept);
    var intLen = kept.length - places;
    var intPart = kept.slice(0, intLen).replace(/^0+(?=\d)/, "") || "0";
    var fracPart = kept.slice(intLen);
    var zero = /^[0]*$/.test(intPart + fracPart);
    return (p.neg && !zero ? "-" : "") + group(intPart) + (places > 0 ? "." + fracPart : "");
  }

  // A balance or fee: at most maxPlaces decimals (cut), trailing zeros dropped.
  function fmtAmount(value, maxPlaces) {
    var p = splitDecimal(value);
    if (!p) return "—";
    var m = maxPlaces == null ? 8 : Number(maxPlaces);
    var frac = p.frac.slice(0, m).replace(/0+$/, "");
    if (/^0*$/.test(p.int + frac)) return "0";
    return (p.neg ? "-" : "") + group(p.int) + (frac ? "." + frac : "");
  }

  // --- toasts: one live region, every outcome the user should not miss ------------------------
  var recent = {};
  var log = []; // the last 50 toasts (tests and screen readers' history): KK99.toastLog
  function toastRoot() {
    var root = document.getElementById("toasts");
    if (!root) {
      root = document.createElement("div");
      root.id = "toasts";
      root.className = "toasts";
      root.setAttribute("role", "status");
      root.setAttribute("aria-live", "polite");
      document.body.appendChild(root);
    }
    return root;
  }

  // kind: "ok" | "fill" | "info" | "error". Same text twice within a second shows once.
  function toast(kind, title, text) {
    var key = kind + "|" + title + "|" + (text || "");
    var now = Date.now();
    if (recent[key] && now - recent[key] < 1000) return null;
    recent[key] = now;
    log.push({ kind: kind, title: title, text: text || "" });
    if (log.length > 50) log.shift();
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("data-kind", kind || "info");
    var strong = document.createElement("strong");
    strong.textContent = title;
    el.appendChild(strong);
    if (text) {
      var span = document.createElement("span");
      span.textContent = text;
      el.appendChild(span);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { el.remove(); });
    el.appendChild(close);
    var root = toastRoot();
    root.appendChild(el);
    while (root.children.length > 5) root.removeChild(root.firstChild);
    setTimeout(function () { el.classList.add("toast-out"); }, kind === "error" ? 9000 : 6000);
    setTimeout(function () { el.remove(); }, kind === "error" ? 9600 : 6600);
    return el;
  }

  // Server-rendered toasts: any element with data-toast (e.g. an order form's response).
  function showServerToasts(scope) {
    (scope || document).querySelectorAll("[data-toast]:not([data-toast-shown])").forEach(function (el) {
      el.setAttribute("data-toast-shown", "1");
      toast(el.dataset.toastKind || "info", el.dataset.toast, el.dataset.toastText || "");
    });
  }

  // --- tabs: [data-tabs] container, [role=tab][aria-controls] buttons, panels by id -----------
  function selectTab(tab) {
    var list = tab.closest("[role=tablist]");
    if (!list) return;
    list.querySelectorAll("[role=tab]").forEach(function (t) {
      var on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      var panel = t.getAttribute("aria-controls") && document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.classList.toggle("is-active", on);
    });
    var owner = list.closest("[data-tab-owner]");
    if (owner) owner.setAttribute("data-" + (list.dataset.tabsName || "tab"), tab.dataset.tab || "");
  }

  function initTabs() {
    document.addEventListener("click", function (e) {
      var tab = e.target.closest("[data-tabs] [role=tab]");
      if (tab) selectTab(tab);
    });
    document.addEventListener("keydown", function (e) {
      var tab = e.target.closest && e.target.closest("[data-tabs] [role=tab]");
      if (!tab || (e.key !== "ArrowRight" && e.key !== "ArrowLeft")) return;
      var tabs = Array.prototype.slice.call(tab.closest("[role=tablist]").querySelectorAll("[role=tab]"));
      var next = tabs[(tabs.indexOf(tab) + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      selectTab(next);
      e.preventDefault();
    });
  }

  // --- tables: a search box [data-filter-for=tableId] and sortable headers [data-sort] --------
  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    var raw = cell ? (cell.dataset.value != null ? cell.dataset.value : cell.textContent) : "";
    if (!numeric) return raw.trim().toLowerCase();
    var n = Number(String(raw).replace(/[,%+\s]/g, ""));
    return isNaN(n) ? -Infinity : n;
  }

  function applyFilter(box) {
    var table = document.getElementById(box.dataset.filterFor);
    var q = box.value.trim().toLowerCase();
    if (!table) return;
    table.querySelectorAll("tbody tr[data-search]").forEach(function (row) {
      row.hidden = q !== "" && row.dataset.search.toLowerCase().indexOf(q) < 0;
    });
  }

  function initTables() {
    document.addEventListener("input", function (e) {
      var box = e.target.closest && e.target.closest("[data-filter-for]");
      if (box) applyFilter(box);
    });
    // Live rows are swapped in whole: filter them again.
    document.body.addEventListener("htmx:oobAfterSwap", function () {
      document.querySelectorAll("[data-filter-for]").forEach(function (box) { if (box.value) applyFilter(box); });
    });
    document.addEventListener("click", function (e) {
      var th = e.target.closest("th[data-sort]");
      if (!th) return;
      var table = th.closest("table");
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = th.dataset.sort === "num";
      var dir = th.getAttribute("aria-sort") === "descending" ? 1 : -1;
      th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.dataset.search != null; });
      rows.sort(function (a, b) {
        var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
        return x < y ? -dir : x > y ? dir : 0;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  }

  // --- copy buttons ----------------------------------------------------------------------------
  function initCopy() {
    document.addEventListener("click", function (e) {
      var el = e.target.closest("[data-copy]");
      if (!el) return;
      var done = function () { toast("ok", "Copied", el.dataset.copyLabel || ""); el.setAttribute("data-copied", "1"); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(el.dataset.copy).then(done, done);
      else {
        var area = document.createElement("textarea");
        area.value = el.dataset.copy;
        area.className = "offscreen";
        document.body.appendChild(area);
        area.select();
        try { document.execCommand("copy"); } catch (err) { /* the address stays selectable */ }
        area.remove();
        done();
      }
    });
  }

  // --- "fill max" buttons: [data-fill-target=inputId][data-fill-value] ------------------------
  function initFill() {
    document.addEventListener("click", function (e) {
      var el = e.target.closest("[data-fill-target]");
      if (!el) return;
      var input = document.getElementById(el.dataset.fillTarget);
      if (!input) return;
      input.value = el.dataset.fillValue;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  // --- favourite markets: ☆ buttons [data-fav=SYMBOL], kept in this browser (localStorage) ---
  var FAV_KEY = "kk99.favourites";
  function favourites() {
    try { return JSON.parse(window.localStorage.getItem(FAV_KEY) || "[]"); } catch (e) { return []; }
  }
  function applyFavourites() {
    var favs = favourites();
    document.querySelectorAll("[data-fav]").forEach(function (btn) {
      var on = favs.indexOf(btn.dataset.fav) >= 0;
      btn.setAttribute("aria-pressed", on ? "true" : "false");
      btn.textContent = on ? "★" : "☆";
      var row = btn.closest("tr");
      if (row) row.classList.toggle("is-fav", on);
    });
    // favourites first, in their original order otherwise
    document.querySelectorAll("tbody").forEach(function (body) {
      var favRows = Array.prototype.filter.call(body.rows, function (r) { return r.classList.contains("is-fav"); });
      for (var i = favRows.length - 1; i >= 0; i--) body.insertBefore(favRows[i], body.firstChild);
    });
  }
  function initFavourites() {
    applyFavourites();
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("[data-fav]");
      if (!btn) return;
      e.preventDefault();
      var favs = favourites(), i = favs.indexOf(btn.dataset.fav);
      if (i >= 0) favs.splice(i, 1); else favs.push(btn.dataset.fav);
      try { window.localStorage.setItem(FAV_KEY, JSON.stringify(favs)); } catch (err) { /* private mode: this page only */ }
      applyFavourites();
    });
    document.body.addEventListener("htmx:oobAfterSwap", applyFavourites);
  }

  window.KK99 = { toastLog: log, fmt: fmt, fmtAmount: fmtAmount, toast: toast, showServerToasts: showServerToasts, selectTab: selectTab };

  function init() {
    initTabs();
    initTables();
    initCopy();
    initFill();
    initFavourites();
    showServerToasts(document);
    document.body.addEventListener("htmx:afterSettle", function () { showServerToasts(document); });
    document.body.addEventListener("htmx:oobAfterSwap", function () { showServerToasts(document); });
  }
  if (document.readyState !== "loading") init(); else document.addEventListener("DOMContentLoaded", init);
})();
