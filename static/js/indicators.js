// KK99 chart indicators: the formulas of quant/indicators.py (the one home of indicator math),
// ported to the browser so the chart can follow the live candle. Same seeding as the Python
// module (TA-Lib's): SMA-seeded EMA, Wilder RSI seeded with the plain mean of the first `period`
// gains and losses, MACD with the fast EMA seeded where the slow one starts and all three
// outputs from index slow + signal - 2, Bollinger with the population standard deviation.
// tests/streams/test_chart_indicators.py runs this file under node and compares every output,
// warm-up included, with quant.indicators on the same candles.
//
// Every function takes an array of closes and returns an array of the same length with null
// where the value is undefined (the warm-up).
(function (root) {
  "use strict";

  function filled(n) { var out = new Array(n); for (var i = 0; i < n; i++) out[i] = null; return out; }

  function sma(close, period) {
    var n = close.length, out = filled(n);
    if (n < period) return out;
    // Each window summed afresh (like numpy's sliding-window sum): no drift from a running sum.
    for (var i = period - 1; i < n; i++) {
      var s = 0;
      for (var j = i - period + 1; j <= i; j++) s += close[j];
      out[i] = s / period;
    }
    return out;
  }

  // EMA of x from index seedEnd on, seeded with the SMA of the `period` values ending there.
  function emaFrom(x, period, seedEnd, out) {
    var k = 2 / (period + 1), s = 0;
    for (var j = seedEnd - period + 1; j <= seedEnd; j++) s += x[j];
    var prev = s / period;
    out[seedEnd] = prev;
    for (var i = seedEnd + 1; i < x.length; i++) {
      prev = (x[i] - prev) * k + prev;
      out[i] = prev;
    }
  }

  function ema(close, period) {
    var out = filled(close.length);
    if (close.length >= period) emaFrom(close, period, period - 1, out);
    return out;
  }

  function rsi(close, period) {
    period = period || 14;
    var n = close.length, out = filled(n);
    if (n <= period) return out;
    var gain = 0, loss = 0, i, d;
    for (i = 1; i <= period; i++) {
      d = close[i] - close[i - 1];
      if (d > 0) gain += d; else if (d < 0) loss -= d;
    }
    gain /= period; loss /= period;
    var total = gain + loss;
    out[period] = total !== 0 ? 100 * (gain / total) : 0;
    for (i = period + 1; i < n; i++) {
      d = close[i] - close[i - 1];
      gain = (gain * (period - 1) + (d > 0 ? d : 0)) / period;
      loss = (loss * (period - 1) + (d < 0 ? -d : 0)) / period;
      total = gain + loss;
      out[i] = total !== 0 ? 100 * (gain / total) : 0;
    }
    return out;
  }

  // { macd, signal, hist }, each an array like the others.
  function macd(close, fast, slow, signal) {
    fast = fast || 12; slow = slow || 26; signal = signal || 9;
    if (slow < fast) { var t = fast; fast = slow; slow = t; }
    var n = close.length, line = filled(n), sig = filled(n), hist = filled(n);
    var start = slow - 1 + signal - 1;
    if (n <= start) return { macd: line, signal: sig, hist: hist };
    var fastEma = filled(n), slowEma = filled(n), raw = filled(n), i;
    emaFrom(close, fast, slow - 1, fastEma);
    emaFrom(close, slow, slow - 1, slowEma);
    for (i = slow - 1; i < n; i++) raw[i] = fastEma[i] - slowEma[i];
    emaFrom(raw, signal, start, sig);
    for (i = start; i < n; i++) { line[i] = raw[i]; hist[i] = line[i] - sig[i]; }
    return { macd: line, signal: sig, hist: hist };
  }

  // { upper, middle, lower }: SMA ± k population standard deviations.
  function bollinger(close, period, k) {
    period = period || 20; k = k == null ? 2 : k;
    var n = close.length, middle = sma(close, period), upper = filled(n), lower = filled(n);
    for (var i = period - 1; i < n; i++) {
      var q = 0;
      for (var j = i - period + 1; j <= i; j++) q += close[j] * close[j];
      var m = middle[i], v = q / period - m * m, dev = k * Math.sqrt(v > 0 ? v : 0);
      upper[i] = period === 1 ? m : m + dev;
      lower[i] = period === 1 ? m : m - dev;
    }
    return { upper: upper, middle: middle, lower: lower };
  }

  var api = { sma: sma, ema: ema, rsi: rsi, macd: macd, bollinger: bollinger };
  root.KK99Indicators = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
