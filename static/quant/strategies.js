// Strategies page: choosing a strategy fills the parameters field with its defaults.
(function () {
  "use strict";
  function bind(root) {
    var select = root.querySelector("select[data-params-target]");
    if (!select || select.dataset.bound) return;
    select.dataset.bound = "1";
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      var input = document.getElementById(select.dataset.paramsTarget);
      if (option && input) input.value = option.dataset.defaults || "";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSwap", function () { bind(document); });
})();
