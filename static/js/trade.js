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
      // The library's own attribution logo injects an inline <style> (blocked by our CSP): the
      // page credits TradingView in its markup instead (templates/trading/trade.html).
      layout: { background: { type: LC.ColorType.Solid, color: "#161a1e" }, textColor: "#848e9c", fontSize: 11, attributionLogo: false },
      grid: { vertLines: { color: "#1f242a" }, horzLines: { color: "#1f242a" } },
      rightPriceScale: { borderColor: "#2b3139" },
      timeScale: { borderColor: "#2b3139", timeVisible: true, secondsVisible: false },
      crosshair: { mode: LC.CrosshairMode.Normal }
    });
    this.candles = this.chart.addSeries(LC.CandlestickSeries, {
      upColor: "#0ecb81", downColor: "#f6465d", borderVisible: false, wickUpColor: "#0ecb81", wickDownColor: "#f6465d",
      // The site's one formatter on the price axis too (thousands separators, market precision).
      priceFormat: { type: "custom", minMove: Math.pow(10, -places), formatter: function (p) { return window.KK99.fmt(p.toFixed(places), places); } }
    });
    // Volume in its own pane (its own scale: never read as a price).
    this.volume = this.chart.addSeries(LC.HistogramSeries, { priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false }, 1);
    var panes = this.chart.panes();
    if (panes[1]) panes[1].setHeight(80);
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.08 } });
    this.places = places;
    this.rows = [];
    this.overlays = {};
    this.legend = document.getElementById("chart-legend");
    var self = this;
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
      if (range && range.from < 5 && self.el.dataset.loaded === "1") self.loadOlder();
    });
    this.chart.subscribeCrosshairMove(function (param) {
      var bar = param && param.time ? param.seriesData.get(self.candles) : null;
      self.showLegend(bar || self.lastBar);
    });
  }

  Chart.prototype.showLegend = function (bar) {
    if (!this.legend) return;
    if (!bar) { this.legend.textContent = ""; return; }
    var p = this.places, f = window.KK99.fmt;
    var up = bar.close >= bar.open;
    this.legend.className = "chart-legend " + (up ? "up" : "down");
    var vol = bar.volume != null ? bar.volume : this.volumeAt(bar.time);
    this.legend.textContent = "O " + f(bar.open, p) + "  H " + f(bar.high, p) + "  L " + f(bar.low, p) + "  C " + f(bar.close, p) + (vol != null ? "  V " + window.KK99.fmtAmount(vol, 4) : "");
  };

  Chart.prototype.volumeAt = function (time) {
    for (var i = this.rows.length - 1; i >= 0; i--) if (this.rows[i].time === time) return this.rows[i].volume;
    return null;
  };

  // Indicators on the loaded candles (closed bars and the live one). The math is
  // static/js/indicators.js — quant/indicators.py's formulas, tested against them.
  function closes(rows) { return rows.map(function (r) { return r.close; }); }
  function points(rows, values) {
    var out = [];
    for (var i = 0; i < rows.length; i++) if (values[i] !== null) out.push({ time: rows[i].time, value: values[i] });
    return out;
  }
  function histogram(rows, values) {
    var out = [];
    for (var i = 0; i < rows.length; i++) if (values[i] !== null) out.push({ time: rows[i].time, value: values[i], color: values[i] >= 0 ? "rgba(14,203,129,.6)" : "rgba(246,70,93,.6)" });
    return out;
  }
  var IND = window.KK99Indicators;
  // Overlays share the price pane; RSI and MACD get a pane each, below the volume.
  var INDICATORS = {
    ma20: { series: [{ color: "#f0b90b" }], data: function (rows) { return [points(rows, IND.sma(closes(rows), 20))]; } },
    ema50: { series: [{ color: "#3d8bfd" }], data: function (rows) { return [points(rows, IND.ema(closes(rows), 50))]; } },
    bb20: { series: [{ color: "#b37feb" }, { color: "#b37feb" }], data: function (rows) { var b = IND.bollinger(closes(rows), 20, 2); return [points(rows, b.upper), points(rows, b.lower)]; } },
    rsi14: {
      pane: true, levels: [70, 30], range: [0, 100],
      series: [{ color: "#f0b90b", title: "RSI 14" }],
      data: function (rows) { return [points(rows, IND.rsi(closes(rows), 14))]; }
    },
    macd: {
      pane: true,
      series: [{ type: "histogram" }, { color: "#3d8bfd", title: "MACD" }, { color: "#f0b90b", title: "Signal" }],
      data: function (rows) { var m = IND.macd(closes(rows), 12, 26, 9); return [histogram(rows, m.hist), points(rows, m.macd), points(rows, m.signal)]; }
    }
  };

  Chart.prototype.setIndicator = function (name, on) {
    var LC = window.LightweightCharts, self = this, spec = INDICATORS[name];
    if (!spec) return;
    var data = on ? spec.data(this.rows) : null;
    var have = this.overlays[name];
    if (on && have) { // already shown: new data into the same series (the pane stays put)
      have.forEach(function (s, i) { s.setData(data[i]); });
      return;
    }
    if (have) have.forEach(function (s) { self.chart.removeSeries(s); }); // an emptied pane goes too
    delete this.overlays[name];
    if (!on) { this.el.dataset.panes = String(this.chart.panes().length); return; }
    var pane = spec.pane ? this.chart.panes().length : 0;
    var places = this.places;
    this.overlays[name] = spec.series.map(function (opt, i) {
      var common = { priceLineVisible: false, lastValueVisible: !!spec.pane, crosshairMarkerVisible: false };
      if (spec.pane) common.priceFormat = { type: "custom", minMove: 0.01, formatter: function (v) { return window.KK99.fmt(v.toFixed(name === "macd" ? Math.max(2, places) : 2), name === "macd" ? Math.max(2, places) : 2); } };
      var s = opt.type === "histogram"
        ? self.chart.addSeries(LC.HistogramSeries, common, pane)
        : self.chart.addSeries(LC.LineSeries, Object.assign(common, { color: opt.color, lineWidth: 1, title: opt.title || "" }), pane);
      s.setData(data[i]);
      if (i === 0 && spec.levels) spec.levels.forEach(function (level) { s.createPriceLine({ price: level, color: "#5e6673", lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: "" }); });
      if (i === 0 && spec.range) s.applyOptions({ autoscaleInfoProvider: function () { return { priceRange: { minValue: spec.range[0], maxValue: spec.range[1] } }; } });
      return s;
    });
    if (spec.pane) { var p = this.chart.panes()[pane]; if (p) p.setHeight(90); }
    this.el.dataset.panes = String(this.chart.panes().length);
  };

  Chart.prototype.refreshIndicators = function () {
    var self = this;
    Object.keys(this.overlays).forEach(function (name) { self.setIndicator(name, true); });
  };

  // Older bars when the user scrolls to the left edge ("history loading on scroll").
  Chart.prototype.loadOlder = function () {
    var self = this;
    if (self.loadingOlder || self.exhausted || !self.rows.length) return;
    self.loadingOlder = true;
    var interval = self.interval;
    var url = self.el.dataset.klinesUrl + "?interval=" + encodeURIComponent(interval) + "&limit=500&end=" + (self.rows[0].time - 1);
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      self.loadingOlder = false;
      if (interval !== self.interval) return;
      var older = (body.candles || []).filter(function (c) { return c.time < self.rows[0].time; });
      if (!older.length) { self.exhausted = true; return; }
      self.rows = older.map(function (c) { return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume }; }).concat(self.rows);
      self.candles.setData(self.rows.map(function (c) { return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close }; }));
      self.volume.setData(self.rows.map(function (c) { return { time: c.time, value: c.volume, color: c.close >= c.open ? "rgba(14,203,129,.45)" : "rgba(246,70,93,.45)" }; }));
      self.refreshIndicators();
      self.el.dataset.bars = String(self.rows.length);
    }, function () { self.loadingOlder = false; });
  };

  Chart.prototype.load = function (interval) {
    var self = this;
    self.exhausted = false;
    if (interval) self.interval = interval;
    var url = self.el.dataset.klinesUrl + "?interval=" + encodeURIComponent(self.interval) + "&limit=500";
    return fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      var rows = body.candles || [];
      self.candles.setData(rows.map(function (c) { return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close }; }));
      self.volume.setData(rows.map(function (c) { return { time: c.time, value: c.volume, color: c.close >= c.open ? "rgba(14,203,129,.45)" : "rgba(246,70,93,.45)" }; }));
      self.rows = rows.map(function (c) { return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume }; });
      self.lastBar = rows.length ? Object.assign({}, rows[rows.length - 1]) : null;
      self.el.dataset.bars = String(rows.length);
      self.el.dataset.loaded = "1";
      var empty = document.getElementById("chart-empty");
      if (empty) empty.hidden = rows.length >= 2;
      // A sensible first view: the last ~120 bars, not 500 squeezed together.
      if (rows.length > 120) self.chart.timeScale().setVisibleLogicalRange({ from: rows.length - 120, to: rows.length + 2 });
      else self.chart.timeScale().fitContent();
      self.refreshIndicators();
      self.showLegend(self.lastBar);
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
    var last = this.rows[this.rows.length - 1];
    if (last && last.time === bar.time) this.rows[this.rows.length - 1] = Object.assign({}, bar);
    else this.rows.push(Object.assign({}, bar));
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
    if (ticks.length) this.refreshIndicators(); // the live candle moves the indicators too
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
    var pp = decimals(form.dataset.tick || "0.01");
    var f = window.KK99;
    totalEl.textContent = (type === "MARKET" ? "≈ " : "") + f.fmt(total.toFixed(pp), pp) + " " + box.dataset.quote;
    // Fees are charged in the asset received: base for a buy, quote for a sell.
    feeEl.textContent = side === "BUY" ? f.fmtAmount((qty * feeRate).toFixed(8)) + " " + box.dataset.base : f.fmtAmount((total * feeRate).toFixed(8)) + " " + box.dataset.quote;
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

  // --- book grouping: levels merged into multiples of the chosen step (display only) --------
  function scaled(value, d) { return Math.round(Number(value) * Math.pow(10, d)); }

  function groupBook(step) {
    var book = document.getElementById("ob-book");
    if (!book || book.dataset.grouped === step) return;
    var tick = document.getElementById("ob-group");
    if (!tick || step === tick.options[0].value) { book.dataset.grouped = step; return; }
    var pp = Number(book.dataset.pricePlaces), qp = Number(book.dataset.qtyPlaces);
    var d = Math.max(pp, decimals(step));
    var g = scaled(step, d);
    var groupPlaces = decimals(step);
    var levels = {};
    [["ob-asks", "ask"], ["ob-bids", "bid"]].forEach(function (pair) {
      var side = book.querySelector("." + pair[0]);
      if (!side) return;
      var rows = side.querySelectorAll(".ob-row[data-price]");
      if (!rows.length) return;
      var buckets = {}, order = [];
      rows.forEach(function (row) {
        var p = scaled(row.dataset.price, d);
        var key = pair[1] === "bid" ? Math.floor(p / g) * g : Math.ceil(p / g) * g;
        if (!(key in buckets)) { buckets[key] = 0; order.push(key); }
        buckets[key] += Number(row.dataset.qty || 0);
      });
      order.sort(function (a, b) { return pair[1] === "bid" ? b - a : a - b; }); // best first, like the server
      levels[pair[1]] = { side: side, keys: order, qty: buckets };
    });
    var top = 0;
    Object.keys(levels).forEach(function (k) {
      var L = levels[k], cum = 0;
      var fromBest = L.keys;
      L.cum = {};
      fromBest.forEach(function (key) { cum += L.qty[key]; L.cum[key] = cum; });
      top = Math.max(top, cum);
    });
    Object.keys(levels).forEach(function (k) {
      var L = levels[k];
      var frag = document.createDocumentFragment();
      L.keys.forEach(function (key) {
        var price = (key / Math.pow(10, d)).toFixed(d);
        var row = document.createElement("div");
        row.className = "ob-row " + k + " d" + (top ? Math.round(L.cum[key] / top * 20) : 0);
        row.dataset.price = price;
        row.dataset.qty = L.qty[key].toFixed(qp);
        [[window.KK99.fmt(price, groupPlaces), k === "bid" ? "up" : "down"], [window.KK99.fmt(L.qty[key].toFixed(qp), qp), "num"], [window.KK99.fmt(L.cum[key].toFixed(qp), qp), "num muted"]].forEach(function (c) {
          var span = document.createElement("span");
          span.className = c[1];
          span.textContent = c[0];
          row.appendChild(span);
        });
        frag.appendChild(row);
      });
      L.side.replaceChildren(frag);
    });
    book.dataset.grouped = step;
  }

  // The user's open orders as price lines on the chart.
  function orderLines(chart) {
    if (!chart) return;
    var wanted = {};
    document.querySelectorAll("#open-orders tr[data-order-id][data-price]").forEach(function (row) {
      if (row.dataset.price) wanted[row.dataset.orderId] = { price: Number(row.dataset.price), side: row.dataset.side };
    });
    chart.lines = chart.lines || {};
    Object.keys(chart.lines).forEach(function (id) {
      if (!wanted[id]) { chart.candles.removePriceLine(chart.lines[id]); delete chart.lines[id]; }
    });
    Object.keys(wanted).forEach(function (id) {
      if (chart.lines[id]) return;
      var w = wanted[id];
      chart.lines[id] = chart.candles.createPriceLine({ price: w.price, color: w.side === "BUY" ? "#0ecb81" : "#f6465d", lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title: (w.side === "BUY" ? "Buy #" : "Sell #") + id });
    });
  }

  // --- optional sound on fills (off by default; the choice is kept in this browser) -------
  var audio = null;
  function soundOn() {
    try { return window.localStorage.getItem("kk99.sound") === "1"; } catch (e) { return false; }
  }
  function beep() {
    if (!soundOn()) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.25);
    } catch (e) { /* no audio: the toast is enough */ }
  }

  // --- private events → toasts ------------------------------------------------------------
  // The user's own fragments (pushed whole over the socket) are diffed against what this page
  // has already seen: a new fill row is a fill toast; a new finished order is its outcome.
  function PrivateEvents() {
    this.seenFills = null;
    this.seenFinal = null;
  }
  PrivateEvents.prototype.ids = function (selector, attr) {
    var out = {};
    document.querySelectorAll(selector).forEach(function (row) { out[row.getAttribute(attr)] = row; });
    return out;
  };
  PrivateEvents.prototype.scan = function () {
    var fills = this.ids("#fills tbody tr[data-trade-id]", "data-trade-id");
    var finals = this.ids("#order-history tbody tr[data-order-id]", "data-order-id");
    if (this.seenFills === null) { this.seenFills = fills; this.seenFinal = finals; return; }
    var self = this;
    Object.keys(fills).forEach(function (id) {
      if (self.seenFills[id]) return;
      var r = fills[id].dataset;
      window.KK99.toast("fill", (r.side === "BUY" ? "Bought " : "Sold ") + r.qty + " " + r.base, "at " + r.price + " " + r.quote);
      beep();
    });
    Object.keys(finals).forEach(function (id) {
      if (self.seenFinal[id]) return;
      var r = finals[id].dataset;
      var what = (r.side === "BUY" ? "Buy " : "Sell ") + r.qty + " " + r.base;
      if (r.status === "FILLED") window.KK99.toast("fill", "Order filled", what + " · average price " + r.avg);
      else if (r.status === "REJECTED") window.KK99.toast("error", "Order rejected", what + (r.reason ? ": " + r.reason : ""));
      else if (r.status === "CANCELED") window.KK99.toast("info", "Order cancelled", what + (r.executed && Number(r.executed.replace(/,/g, "")) > 0 ? " · " + r.executed + " filled" : ""));
      else if (r.status.indexOf("EXPIRED") === 0) window.KK99.toast("info", "Order expired", what + (r.reason ? ": " + r.reason : ""));
    });
    this.seenFills = fills;
    this.seenFinal = finals;
  };

  // The user's resting orders marked on the book's price levels.
  function markOwnOrders() {
    var own = {};
    document.querySelectorAll("#open-orders tr[data-order-id][data-price]").forEach(function (row) {
      if (row.dataset.price) own[(row.dataset.side === "BUY" ? "bid:" : "ask:") + Number(row.dataset.price)] = true;
    });
    document.querySelectorAll("#ob-book .ob-row[data-price]").forEach(function (row) {
      var key = (row.classList.contains("bid") ? "bid:" : "ask:") + Number(row.dataset.price);
      row.classList.toggle("own", !!own[key]);
    });
  }

  // --- client-side checks: number format, tick and step sizes, minimum order value ----------
  function isMultiple(value, step) {
    var d = Math.max(decimals(value), decimals(step));
    var scale = Math.pow(10, d);
    var v = Math.round(Number(value) * scale), st = Math.round(Number(step) * scale);
    return st === 0 || v % st === 0;
  }
  function fieldProblem(form, input) {
    var v = input.value.trim();
    var name = input.name;
    var ds = form.dataset;
    if (name !== "quantity" && formType(form) === "MARKET") return "";
    if (name === "stop_price" && formType(form) !== "STOP_LOSS_LIMIT") return "";
    var label = name === "quantity" ? "amount" : name === "stop_price" ? "stop price" : "price";
    if (v === "") return "";
    if (!/^\d*\.?\d+$|^\d+\.$/.test(v)) return "The " + label + " must be a number, like 0.5 or 60000.25.";
    if (Number(v) <= 0) return "The " + label + " must be more than 0.";
    if (name === "quantity") {
      if (!isMultiple(v, ds.step)) return "The amount must be a multiple of " + ds.step + " " + ds.base + ".";
      if (Number(v) < Number(ds.minQty)) return "The amount must be at least " + ds.minQty + " " + ds.base + ".";
      var priceInput = form.querySelector("[data-price-input]");
      var price = formType(form) === "MARKET" ? lastPrice() : Number(priceInput && priceInput.value || 0);
      if (price && Number(v) * price < Number(ds.minNotional)) return "The order is too small: its total must be at least " + ds.minNotional + " " + ds.quote + ".";
    } else if (!isMultiple(v, ds.tick)) {
      return "The " + label + " must be a multiple of " + ds.tick + " " + ds.quote + ".";
    }
    return "";
  }
  // Shows (or clears, once fixed) the message next to the field. Returns true when valid.
  function validateField(form, input, submitting) {
    if (!input || !input.name || !form.contains(input)) return true;
    var box = form.querySelector("[data-error-for='" + input.name + "']");
    if (!box) return true;
    var problem = fieldProblem(form, input);
    if (!problem && submitting && input.value.trim() === "" && input.offsetParent !== null && input.name !== "stop_price") {
      problem = "Enter the " + (input.name === "quantity" ? "amount" : "price") + ".";
    }
    if (!problem && submitting && input.name === "stop_price" && formType(form) === "STOP_LOSS_LIMIT" && input.value.trim() === "") problem = "Enter the stop price.";
    box.textContent = problem;
    box.hidden = !problem;
    var field = input.closest(".field");
    if (field) field.classList.toggle("invalid", !!problem);
    input.setAttribute("aria-invalid", problem ? "true" : "false");
    return !problem;
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

    // Tabs (orders, Buy/Sell switch, Chart/Book/Trades) are kk99.js's: they set data-tab,
    // data-side and data-view on this root, and CSS shows the matching parts.
    var sound = document.querySelector("[data-sound]");
    if (sound) {
      sound.checked = soundOn();
      sound.addEventListener("change", function () {
        try { window.localStorage.setItem("kk99.sound", sound.checked ? "1" : "0"); } catch (e) { /* this page only */ }
        if (sound.checked) beep();
      });
    }
    document.querySelectorAll("[data-indicator]").forEach(function (box) {
      box.addEventListener("change", function () { if (chart) chart.setIndicator(box.dataset.indicator, box.checked); });
    });
    var pair = root.dataset.pair;
    var events = new PrivateEvents();
    var groupSelect = document.getElementById("ob-group");
    // Book depth (levels a side): kept in this browser; the server renders the book at that
    // depth for this connection from the next push on ({"depth": n} over the socket).
    var depthSelect = document.getElementById("ob-depth");
    function wantedDepth() {
      try { return window.localStorage.getItem("kk99.bookDepth") || ""; } catch (e) { return ""; }
    }
    function sendDepth() {
      if (depthSelect && socket) socket.send(JSON.stringify({ depth: Number(depthSelect.value) }));
    }
    if (depthSelect) {
      var stored = wantedDepth();
      if (stored && depthSelect.querySelector("option[value='" + stored + "']")) depthSelect.value = stored;
      depthSelect.addEventListener("change", function () {
        try { window.localStorage.setItem("kk99.bookDepth", depthSelect.value); } catch (e) { /* this page only */ }
        if (socket) sendDepth(); else refetchBook();
      });
    }
    function refetchBook() {
      var book = document.getElementById("ob-book");
      if (book) book.dataset.grouped = "";
      var depth = depthSelect ? "&depth=" + encodeURIComponent(depthSelect.value) : "";
      fetch(window.location.pathname + "?fragment=book" + depth, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var cur = document.getElementById("ob-book");
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var fresh = tpl.content.firstElementChild;
          if (cur && fresh && fresh.id === "ob-book" && Number(fresh.dataset.seq) >= Number(cur.dataset.seq || 0)) cur.replaceWith(fresh);
          afterUpdate();
        });
    }
    // Regroup from a fresh book (the server's rows are the source).
    if (groupSelect) groupSelect.addEventListener("change", refetchBook);
    function afterUpdate() {
      if (groupSelect) groupBook(groupSelect.value);
      events.scan();
      markOwnOrders();
      orderLines(chart);
      var last = document.querySelector("#market-ticker .tk-last");
      if (last && last.textContent.trim()) document.title = last.textContent.trim() + " " + pair + " · KK99";
    }
    afterUpdate();
    // Whatever swapped (socket push, form response, cancel), look once per frame.
    var queued = false;
    new MutationObserver(function () {
      if (queued) return;
      queued = true;
      window.requestAnimationFrame(function () { queued = false; afterUpdate(); });
    }).observe(root, { childList: true, subtree: true });

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
      // A new connection starts at the default depth: ask again for the one chosen here.
      if (depthSelect && depthSelect.value !== depthSelect.options[0].value) sendDepth();
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
      if (form) { estimate(form); validateField(form, e.target); }
    });
    document.addEventListener("submit", function (e) {
      var form = e.target.closest(".order-form");
      if (!form) return;
      var ok = true;
      form.querySelectorAll("input[name=price], input[name=stop_price], input[name=quantity]").forEach(function (input) {
        if (!validateField(form, input, true)) ok = false;
      });
      if (!ok) { e.preventDefault(); e.stopPropagation(); }
    }, true);
    document.body.addEventListener("htmx:beforeRequest", function (e) {
      var form = e.target.closest && e.target.closest(".order-form");
      if (form && form.querySelector(".field-error:not([hidden])")) e.preventDefault();
    });
    document.addEventListener("change", function (e) {
      var form = e.target.closest(".order-form");
      if (form) estimate(form);
    });
  });
})();
