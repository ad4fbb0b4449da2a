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
  // The page poll (batches/views_live.py) sends the versions of what the page shows: its running rows
  // (data-live, data-version) and its other parts (data-live-part names the parameter). The answer
  // carries only what changed, or 204.
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-page-poll")) return;
    const rows = [];
    document.querySelectorAll("[data-live][data-version]").forEach(function (row) {
      rows.push(row.dataset.live + "." + row.dataset.version);
    });
    event.detail.parameters.rows = rows.join(",");
    document.querySelectorAll("[data-live-part]").forEach(function (part) {
      event.detail.parameters[part.dataset.livePart] = part.dataset.version || "";
    });
  });
  // The page poll's timer: the answer says when to ask next (X-Live-Poll-In, ms: just after the next
  // refresh of what the page shows), else every data-poll-seconds. A hidden tab or a paused page skips
  // its turn; a page without the poll element (a finished batch) stops.
  let pollTimer = null;
  function pollSeconds() {
    const poll = document.getElementById("live-poll");
    return poll ? Number(poll.dataset.pollSeconds || 5) : 5;
  }
  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(firePoll, ms);
  }
  function firePoll() {
    const poll = document.getElementById("live-poll");
    if (!poll) return;
    // Also the safety net should an answer never come (htmx:afterRequest reschedules sooner).
    schedulePoll(2000 * pollSeconds());
    if (!document.hidden && isLive()) htmx.trigger(poll, "live-poll");
  }
  // On the answer, before its swap: an answer that swaps the poll element in again (any change does)
  // takes the element out of the document first, and htmx:afterRequest, fired on it afterwards, never
  // reaches this listener (the poll then waited for the safety net, twice the interval).
  // htmx:afterRequest still covers a request that got no answer at all.
  function onAnswer(event) {
    if (!event.detail.elt.hasAttribute("data-page-poll")) return;
    const next = Number(event.detail.xhr && event.detail.xhr.getResponseHeader("X-Live-Poll-In"));
    schedulePoll(next > 0 ? next : 1000 * pollSeconds());
  }
  document.addEventListener("htmx:beforeOnLoad", onAnswer);
  document.addEventListener("htmx:afterRequest", onAnswer);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && document.getElementById("live-poll")) schedulePoll(200);
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("live-poll")) schedulePoll(1000 * pollSeconds());
  });
  document.addEventListener("DOMContentLoaded", renderToggle);
  document.addEventListener("htmx:afterSwap", renderToggle);
})();

// Relative times ("12m 5s ago", "in 3m", a running batch's elapsed time) tick here between renders,
// so that a row poll can answer 204 when nothing but the clock moved. The text is the server's
// format (batches/templatetags/batch_tags.py: duration, ago, until); the server's clock is the
// reference (data-now on <html>), so a skewed client clock does not shift it.
(function () {
  const rendered = Date.parse(document.documentElement.dataset.now || "");
  const skew = isNaN(rendered) ? 0 : rendered - Date.now();
  function duration(seconds) {
    seconds = Math.floor(seconds);
    if (seconds < 0) return "";
    const days = Math.floor(seconds / 86400);
    const hours = Math.floor((seconds % 86400) / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const secs = seconds % 60;
    if (days) return days + "d " + hours + "h";
    if (hours) return hours + "h " + minutes + "m";
    if (minutes) return minutes + "m " + secs + "s";
    return secs + "s";
  }
  function tick() {
    if (document.hidden) return;
    const now = Date.now() + skew;
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      const at = Date.parse(element.getAttribute("datetime"));
      if (isNaN(at)) return;
      const kind = element.dataset.relative;
      let text;
      if (kind === "ago") {
        text = (duration((now - at) / 1000) || "0s") + " ago";
      } else if (kind === "elapsed") {
        text = duration((now - at) / 1000);
      } else if (kind === "until") {
        text = at - now >= 1000 ? "in " + duration((at - now) / 1000) : "any moment now";
      }
      if (text !== undefined && element.textContent !== text) element.textContent = text;
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);
})();

// A polite announcement when a batch on the page finishes: every element carrying data-announce (a
// list row, the detail page's header) is remembered by id with whether it was terminal; after any htmx
// swap, one that turned terminal is announced once. Polls that change nothing announce nothing.
(function () {
  const terminal = new Map();
  function scan(announce) {
    const finished = [];
    document.querySelectorAll("[data-announce]").forEach(function (element) {
      if (!element.id) return;
      const isTerminal = element.hasAttribute("data-terminal");
      if (announce && terminal.get(element.id) === false && isTerminal) {
        const badge = element.querySelector(".badge");
        finished.push("Batch " + element.dataset.announce + " " + (badge ? badge.textContent.trim() : element.dataset.status) + ".");
      }
      terminal.set(element.id, isTerminal);
    });
    const region = document.getElementById("announcer");
    if (finished.length && region) {
      region.textContent = "";
      // A fresh text node after a pause, so a reader announces even a text equal to the last one.
      setTimeout(function () { region.textContent = finished.join(" "); }, 100);
    }
  }
  document.addEventListener("DOMContentLoaded", function () { scan(false); });
  document.addEventListener("htmx:afterSettle", function () { scan(true); });
  document.addEventListener("htmx:oobAfterSwap", function () { scan(true); });
})();

// Content shown on hover or focus (the list's "+N" metadata) is dismissed with Escape (WCAG 1.4.13).
document.addEventListener("keydown", function (event) {
  if (event.key === "Escape" && document.activeElement && document.activeElement.classList.contains("meta-more")) {
    document.activeElement.blur();
  }
});
