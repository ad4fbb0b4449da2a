// The push doorbell (batches/views_events.py): while the page has a live poll and the tab is visible,
// an EventSource listens for "connection N changed" and fires the page's poll at once (the poll element's
// live-nudge trigger) instead of waiting for its timer. A burst makes one request: nudges are at least
// MIN_GAP_MS apart, and a nudge during a poll in flight fires once it is answered. Without the events
// server (runserver, or it is down) the stream fails and the page polls on its timer as before; it is
// tried again later. A hidden tab closes its stream and reopens it when shown.
(function () {
  const MIN_GAP_MS = 1000;
  const RETRY_FIRST_MS = 15000;
  const RETRY_MAX_MS = 300000;
  let source = null;
  let retryTimer = null;
  let retryMs = RETRY_FIRST_MS;
  let inFlight = false;
  let inFlightSince = 0;
  let pending = false;
  let lastNudge = 0;
  let nudgeTimer = null;

  function poll() {
    return document.getElementById("live-poll");
  }
  // The connections the page watches, as its poll sends them (the poll URL's `w`).
  function eventsUrl() {
    const element = poll();
    if (!element || !element.dataset.events) return null;
    const watched = new URL(element.getAttribute("hx-get"), location.href).searchParams.get("w");
    if (!watched) return null;
    const url = new URL(element.dataset.events, location.href);
    url.searchParams.set("w", watched);
    return url;
  }
  // A poll element answers a trigger only once htmx has processed it: a nudge that comes while an
  // answer's new element is still settling waits for it (or, should that event be missed, a moment).
  const processed = new WeakSet();
  document.addEventListener("htmx:afterProcessNode", function (event) {
    if (event.target.id !== "live-poll") return;
    processed.add(event.target);
    if (pending) nudge();
  });
  function later(ms) {
    if (!nudgeTimer) nudgeTimer = setTimeout(function () { nudgeTimer = null; nudge(); }, ms);
  }
  function nudge() {
    const element = poll();
    if (!element) return;
    pending = true;
    if (inFlight && Date.now() - inFlightSince > 10000) inFlight = false;  // an answer that never came
    if (inFlight) return;  // its end nudges again
    if (!processed.has(element)) {
      if (!nudgeTimer) nudgeTimer = setTimeout(function () { nudgeTimer = null; processed.add(element); nudge(); }, 300);
      return;
    }
    const wait = lastNudge + MIN_GAP_MS - Date.now();
    if (wait > 0) return later(wait);
    pending = false;
    lastNudge = Date.now();
    htmx.trigger(element, "live-nudge");
  }
  // The end of a poll is the end of its XHR: htmx:afterRequest does not reach the document when the
  // answer replaced the poll element (out-of-band swaps included).
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-page-poll")) return;
    inFlight = true;
    inFlightSince = Date.now();
    event.detail.xhr.addEventListener("loadend", function () {
      inFlight = false;
      if (pending) setTimeout(nudge, 0);
    });
  });
  function watches(data) {
    const element = poll();
    if (!element) return false;
    const watched = (new URL(element.getAttribute("hx-get"), location.href).searchParams.get("w") || "").split(",");
    return watched.indexOf("all") >= 0 || String(data).split(",").some(function (pk) {
      return pk === "all" || watched.indexOf(pk) >= 0;
    });
  }
  function close() {
    if (source) source.close();
    source = null;
  }
  function open() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source || document.hidden || typeof EventSource === "undefined") return;
    const url = eventsUrl();
    if (!url) return;
    source = new EventSource(url.href, { withCredentials: url.origin !== location.origin });
    source.addEventListener("open", function () { retryMs = RETRY_FIRST_MS; });
    source.addEventListener("change", function (event) {
      if (watches(event.data)) nudge();
    });
    source.addEventListener("error", function () {
      // A dropped stream reconnects by itself; one refused (404 without the events server, 403 signed
      // out, 204 nothing to watch) is closed for good, so try again later, less and less often.
      if (!source || source.readyState !== EventSource.CLOSED) return;
      close();
      retryTimer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      close();
    } else {
      open();
    }
  });
  document.addEventListener("DOMContentLoaded", open);
})();
