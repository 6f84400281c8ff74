// KK99 withdraw page: the chosen asset's available balance, fee, max and the amounts that
// follow from the typed amount. Display only — the server checks everything again.
(function () {
  "use strict";
  function init() {
    var form = document.getElementById("withdraw-form");
    if (!form) return;
    var select = form.querySelector("select[name=chain_asset]");
    var amount = form.querySelector("input[name=amount]");
    function current() {
      var id = select ? select.value : "";
      var shown = null;
      form.querySelectorAll("#withdraw-info [data-option]").forEach(function (dl) {
        var on = !!id && dl.dataset.option === id;
        dl.hidden = !on;
        if (on) shown = dl;
      });
      var hint = form.querySelector("#withdraw-info [data-choose]");
      if (hint) hint.hidden = !!shown;
      // Saved addresses: only those of the chosen network (and for this asset or any asset).
      form.querySelectorAll("[data-saved-chain]").forEach(function (b) {
        b.hidden = !!shown && (b.dataset.savedChain !== shown.dataset.chain || (b.dataset.savedAsset && b.dataset.savedAsset !== shown.dataset.asset));
      });
      return shown;
    }
    function update() {
      var dl = current();
      if (!dl) return;
      var v = amount ? amount.value.trim() : "";
      var places = Number(dl.dataset.places);
      var receive = dl.querySelector("[data-receive]"), total = dl.querySelector("[data-total]");
      if (!v || isNaN(Number(v)) || Number(v) <= 0) { receive.textContent = "—"; total.textContent = "—"; return; }
      // Exact enough for display: scaled integers at the asset's (≤ 8) decimals.
      var scale = Math.pow(10, places);
      var sum = (Math.round(Number(v) * scale) + Math.round(Number(dl.dataset.fee) * scale)) / scale;
      receive.textContent = window.KK99.fmtAmount(v, places) + " " + dl.dataset.asset;
      total.textContent = window.KK99.fmtAmount(sum.toFixed(places), places) + " " + dl.dataset.asset;
    }
    if (select) select.addEventListener("change", update);
    if (amount) amount.addEventListener("input", update);
    update();
  }
  if (document.readyState !== "loading") init(); else document.addEventListener("DOMContentLoaded", init);
})();
