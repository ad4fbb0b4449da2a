// Live updates: polling elements carry data-poll. They poll only while the tab is visible and the
// live toggle is on; no inline script, so a strict Content-Security-Policy stays possible.
(function () {
  const storageKey = "batch-dashboard-live";
  function isLive() {
    return localStorage.getItem(storageKey) !== "paused";
  }
  function renderToggle() {
    document.querySelectorAll("[data-live-toggle]").forEach(function (button) {
      const live = isLive();
      button.textContent = live ? "● Live" : "❚❚ Paused";
      button.setAttribute("aria-pressed", String(live));
      button.classList.toggle("paused", !live);
    });
  }
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("[data-live-toggle]");
    if (toggle) {
      localStorage.setItem(storageKey, isLive() ? "paused" : "live");
      renderToggle();
    }
    const copy = event.target.closest("[data-copy]");
    if (copy && navigator.clipboard) {
      navigator.clipboard.writeText(copy.dataset.copy);
      copy.classList.add("copied");
      setTimeout(function () { copy.classList.remove("copied"); }, 1200);
    }
  });
  document.addEventListener("htmx:confirm", function (event) {
    const element = event.detail.elt;
    if (element.hasAttribute("data-poll") && (document.hidden || !isLive())) {
      event.preventDefault();
    }
  });
  document.addEventListener("DOMContentLoaded", renderToggle);
  document.addEventListener("htmx:afterSwap", renderToggle);
})();
