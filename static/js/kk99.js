// KK99 — small progressive enhancements. No inline scripts anywhere (CSP forbids them).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((el) => {
    el.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(el.dataset.copy));
  });
});
