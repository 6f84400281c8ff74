// KK99 trading page: chart, live indicator, tabs and the order form's helpers.
// The book, trades, ticker and private tables are swapped in by htmx (ws extension, out of band);
// this file only adds what HTML cannot do. No inline scripts (CSP).
(function () {
  "use strict";
  var INTERVAL_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
  var STALE_MS = 15000;

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  function decimals(step) {
    var s = String(step);
    return s.indexOf(".") < 0 ? 0 : s.length - s.indexOf(".") - 1;
  }

  function floorTo(value, step) {
    var d = decimals(step);
    var n = Math.floor(value / Number(step) + 1e-9) * Number(step);
    return n.toFixed(d);
  }

  // --- chart ------------------------------------------------------------------------------
  function Chart(el) {
    this.el = el;
    this.interval = "1m";
    this.lastBar = null;
    this.lastSeq = null;
    var LC = window.LightweightCharts;
    var places = Number(el.dataset.pricePlaces || 2);
    this.chart = LC.createChart(el, {
      autoSize: true,
      layout: { background: { type: LC.ColorType.Solid, color: "#161a1e" }, textColor: "#848e9c", fontSize: 11 },
      grid: { vertLines: { color: "#1f242a" }, horzLines: { color: "#1f242a" } },
      rightPriceScale: { borderColor: "#2b3139" },
      timeScale: { borderColor: "#2b3139", timeVisible: true, secondsVisible: false },
      crosshair: { mode: LC.CrosshairMode.Normal }
    });
    this.candles = this.chart.addSeries(LC.CandlestickSeries, {
      upColor: "#0ecb81", downColor: "#f6465d", borderVisible: false, wickUpColor: "#0ecb81", wickDownColor: "#f6465d",
      priceFormat: { type: "price", precision: places, minMove: Math.pow(10, -places) }
    });
    this.volume = this.chart.addSeries(LC.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
  }

  Chart.prototype.load = function (interval) {
    var self = this;
    if (interval) self.interval = interval;
    var url = self.el.dataset.klinesUrl + "?interval=" + encodeURIComponent(self.interval) + "&limit=500";
    return fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      var rows = body.candles || [];
      self.candles.setData(rows.map(function (c) { return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close }; }));
      self.volume.setData(rows.map(function (c) { return { time: c.time, value: c.volume, color: c.close >= c.open ? "rgba(14,203,129,.45)" : "rgba(246,70,93,.45)" }; }));
      self.lastBar = rows.length ? Object.assign({}, rows[rows.length - 1]) : null;
      self.el.dataset.bars = String(rows.length);
      self.el.dataset.loaded = "1";
    });
  };

  Chart.prototype.addTrade = function (timeMs, price, qty) {
    var size = INTERVAL_SECONDS[this.interval];
    var t = Math.floor(timeMs / 1000 / size) * size;
    var bar = this.lastBar;
    if (bar && t < bar.time) return; // older than the live candle: already in the history
    if (!bar || t > bar.time) {
      bar = { time: t, open: price, high: price, low: price, close: price, volume: 0 };
    }
    bar.high = Math.max(bar.high, price);
    bar.low = Math.min(bar.low, price);
    bar.close = price;
    bar.volume += qty;
    this.lastBar = bar;
    this.candles.update({ time: bar.time, open: bar.open, high: bar.high, low: bar.low, close: bar.close });
    this.volume.update({ time: bar.time, value: bar.volume, color: bar.close >= bar.open ? "rgba(14,203,129,.45)" : "rgba(246,70,93,.45)" });
    this.el.dataset.lastClose = String(bar.close);
    this.el.dataset.updates = String(Number(this.el.dataset.updates || 0) + 1);
  };

  Chart.prototype.applyTicks = function () {
    var node = document.getElementById("chart-ticks");
    if (!node || node.dataset.seq === this.lastSeq) return;
    this.lastSeq = node.dataset.seq;
    var ticks;
    try { ticks = JSON.parse(node.dataset.ticks || "[]"); } catch (e) { return; }
    for (var i = 0; i < ticks.length; i++) this.addTrade(Number(ticks[i][0]), Number(ticks[i][1]), Number(ticks[i][2]));
  };

  // --- order forms ---------------------------------------------------------------------------
  function balances() {
    var el = document.getElementById("trade-balances");
    if (!el || !el.dataset.quoteAvailable) return null;
    return { base: Number(el.dataset.baseAvailable), quote: Number(el.dataset.quoteAvailable) };
  }

  function lastPrice() {
    var el = document.querySelector("#market-ticker .tk-last");
    return el ? Number(el.dataset.last) : 0;
  }

  function formType(form) {
    var checked = form.querySelector("input[name=type]:checked");
    return checked ? checked.value : "LIMIT";
  }

  function estimate(form) {
    var box = form.querySelector(".estimate");
    if (!box) return;
    var qty = Number((form.querySelector("[data-qty-input]") || {}).value || 0);
    var priceInput = form.querySelector("[data-price-input]");
    var type = formType(form);
    var price = type === "MARKET" ? lastPrice() : Number(priceInput && priceInput.value || 0);
    var total = qty * price;
    var feeRate = Number(type === "MARKET" ? box.dataset.takerFee : box.dataset.makerFee);
    var side = form.querySelector("input[name=side]").value;
    var totalEl = box.querySelector("[data-est-total]");
    var feeEl = box.querySelector("[data-est-fee]");
    if (!qty || !price) { totalEl.textContent = "—"; feeEl.textContent = "—"; return; }
    totalEl.textContent = (type === "MARKET" ? "≈ " : "") + total.toFixed(2) + " " + box.dataset.quote;
    // Fees are charged in the asset received: base for a buy, quote for a sell.
    feeEl.textContent = side === "BUY" ? (qty * feeRate).toPrecision(4) + " " + box.dataset.base : (total * feeRate).toFixed(4) + " " + box.dataset.quote;
  }

  function onPct(button) {
    var form = button.closest("form");
    var b = balances();
    if (!b) return;
    var pct = Number(button.dataset.pct) / 100;
    var side = form.querySelector("input[name=side]").value;
    var qtyInput = form.querySelector("[data-qty-input]");
    var step = qtyInput.dataset.step || "0.0001";
    var priceInput = form.querySelector("[data-price-input]");
    var price = formType(form) === "MARKET" ? lastPrice() : Number(priceInput && priceInput.value || 0) || lastPrice();
    var qty = side === "SELL" ? b.base * pct : (price ? b.quote * pct / price : 0);
    qtyInput.value = qty > 0 ? floorTo(qty, step) : "";
    if (priceInput && !priceInput.value && price && formType(form) !== "MARKET") priceInput.value = String(price);
    estimate(form);
  }

  ready(function () {
    var root = document.querySelector(".trade[data-symbol]");
    if (!root) return;
    var chartEl = document.getElementById("chart");
    var chart = null;
    if (chartEl && window.LightweightCharts) {
      chart = new Chart(chartEl);
      chart.load("1m");
    }

    document.querySelectorAll(".intervals [data-interval]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        document.querySelectorAll(".intervals [data-interval]").forEach(function (b) { b.removeAttribute("aria-selected"); });
        btn.setAttribute("aria-selected", "true");
        if (chart) chart.load(btn.dataset.interval);
      });
    });

    document.querySelectorAll(".tabs [data-tab]").forEach(function (tab) {
      tab.addEventListener("click", function () {
        document.querySelectorAll(".tabs [data-tab]").forEach(function (t) { t.removeAttribute("aria-selected"); });
        tab.setAttribute("aria-selected", "true");
        root.dataset.tab = tab.dataset.tab;
      });
    });
    root.dataset.tab = "open-orders";

    // Live connection state, heartbeat watchdog, a fresh chart history after a reconnect.
    var live = document.getElementById("live-indicator");
    var lastMessage = Date.now();
    var socket = null;
    var opened = 0;
    function setLive(state, text) {
      if (!live) return;
      live.dataset.state = state;
      live.querySelector(".live-text").textContent = text;
    }
    root.addEventListener("htmx:wsOpen", function (e) {
      socket = e.detail.socketWrapper;
      opened += 1;
      lastMessage = Date.now();
      setLive("live", "Live");
      if (opened > 1 && chart) chart.load();
    });
    root.addEventListener("htmx:wsClose", function () { setLive("down", "Reconnecting"); });
    root.addEventListener("htmx:wsAfterMessage", function (e) {
      lastMessage = Date.now();
      if (chart && e.detail.message.indexOf('id="chart-ticks"') >= 0) chart.applyTicks();
    });
    setInterval(function () {
      if (socket && Date.now() - lastMessage > STALE_MS) {
        setLive("down", "Reconnecting");
        lastMessage = Date.now();
        socket.reconnect();
      }
    }, 3000);

    // Order forms: % of balance, estimates, click a book level to use its price.
    document.addEventListener("click", function (e) {
      var pct = e.target.closest(".pct-buttons [data-pct]");
      if (pct) { onPct(pct); return; }
      var row = e.target.closest(".ob-row[data-price]");
      if (row) {
        document.querySelectorAll(".order-form [data-price-input]").forEach(function (input) {
          input.value = row.dataset.price;
          estimate(input.closest("form"));
        });
      }
    });
    document.addEventListener("input", function (e) {
      var form = e.target.closest(".order-form");
      if (form) estimate(form);
    });
    document.addEventListener("change", function (e) {
      var form = e.target.closest(".order-form");
      if (form) estimate(form);
    });
  });
})();
