// Sage token widget: Login Now window, instant refresh when the window reports back (focus then moves to the
// widget), a changed state announced to screen readers, conditional polls (If-None-Match with the ETag of the
// widget shown: the server answers 304 while nothing shown changed), polling paused in hidden tabs, "Updated HH:MM"
// after every answer, and a visible stale state when a poll fails.
(function () {
  "use strict";
  var EVENT = "sage-token-changed";
  var CHANNEL = "sage-panel";
  var lastUpdated = new Date();
  var widgetEtag = null;        // the ETag of the widget on screen (none until the first poll after page load)
  var focusWidgetNext = false;  // set by a Login Now result: the refreshed widget takes focus

  function widget() { return document.getElementById("token-widget"); }

  // HH:MM in the company's timezone (data-tz), as the server renders it.
  function hhmm(d) {
    var el = document.querySelector("#token-widget [data-updated]");
    try {
      return new Intl.DateTimeFormat("en-GB", {hour: "2-digit", minute: "2-digit", hourCycle: "h23",
                                                timeZone: (el && el.getAttribute("data-tz")) || undefined}).format(d);
    } catch (e) {
      return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
    }
  }

  // The widget on screen is current (a new one was swapped in, or the server said 304 Not Modified).
  function confirmed() {
    lastUpdated = new Date();
    var el = widget();
    if (!el) { return; }
    var updated = el.querySelector("[data-updated]");
    if (updated) { updated.textContent = "Updated " + hhmm(lastUpdated); }
    var note = el.querySelector("[data-stale]");
    if (note) { note.hidden = true; note.textContent = ""; }
    el.classList.remove("is-stale");
  }

  function refreshNow() { htmx.trigger(document.body, EVENT); }

  // --- Login Now (a button in a GET form, so Space and Enter work): a centred popup; if the browser blocks it,
  // the form navigates this window through the same flow. ---
  document.addEventListener("submit", function (evt) {
    var form = evt.target.closest && evt.target.closest("form[data-login-now]");
    if (!form) { return; }
    var w = 520, h = 680;
    var left = Math.max(0, (window.screenX || 0) + (window.outerWidth - w) / 2);
    var top = Math.max(0, (window.screenY || 0) + (window.outerHeight - h) / 2);
    var url = form.action + (form.action.indexOf("?") < 0 ? "?" : "&") + "popup=1";
    var popup = window.open(url, "sage-login", "popup=yes,width=" + w + ",height=" + h + ",left=" + left + ",top=" + top);
    if (popup) {
      evt.preventDefault();
      popup.focus();
    } // else: popup blocked — the form navigates this window.
  });

  // The sign-in window reports back (same origin only), by postMessage and by BroadcastChannel.
  function onResult(data) {
    if (!data || data.type !== EVENT) { return; }
    focusWidgetNext = true;  // the button that opened the window is replaced by the refresh: don't leave focus on <body>
    refreshNow();
    if (data.ok === false && data.message && window.panel) { window.panel.flash(data.message, "error"); }
    if (data.ok === true && data.message && window.panel) { window.panel.flash(data.message, "success"); }
  }
  window.addEventListener("message", function (evt) {
    if (evt.origin !== window.location.origin) { return; }
    onResult(evt.data);
  });
  if ("BroadcastChannel" in window) {
    var seen = {};
    new BroadcastChannel(CHANNEL).onmessage = function (evt) {
      // Both channels may deliver the same result: act once per result id.
      if (evt.data && evt.data.id && seen[evt.data.id]) { return; }
      if (evt.data && evt.data.id) { seen[evt.data.id] = true; }
      onResult(evt.data);
    };
    window.addEventListener("message", function (evt) {
      if (evt.origin === window.location.origin && evt.data && evt.data.id) { seen[evt.data.id] = true; }
    }, true);
  }

  // Timed polls (no triggering event) and the refresh when a tab becomes visible again are conditional: they
  // carry the shown widget's ETag, and a 304 answer leaves it in place. A change event always gets a new widget.
  document.addEventListener("htmx:configRequest", function (evt) {
    var trigger = evt.detail.triggeringEvent;
    if (evt.detail.elt && evt.detail.elt.id === "token-widget" && (!trigger || trigger.type === "panel-refresh")) {
      evt.detail.headers["X-Panel-Poll"] = "1";
      if (widgetEtag) { evt.detail.headers["If-None-Match"] = widgetEtag; }
    }
  });
  // Read before the swap: afterwards the requesting element has left the document and its events go nowhere.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!evt.detail.elt || evt.detail.elt.id !== "token-widget" || !xhr) { return; }
    if (xhr.status === 200) { widgetEtag = xhr.getResponseHeader("ETag"); }
    if (xhr.status === 304) { confirmed(); }  // htmx-config: 304 is not swapped
  });

  // --- Polling: skip polls while the tab is hidden, refresh as soon as it is visible again. ---
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var el = evt.detail.elt;
    if (el && el.id === "token-widget" && document.visibilityState === "hidden") { evt.preventDefault(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && widget()) { htmx.trigger(widget(), "panel-refresh"); }
  });

  // --- Failed polls show "Couldn't refresh — last updated HH:MM" instead of going silently stale. ---
  function markStale() {
    var el = widget();
    if (!el) { return; }
    var note = el.querySelector("[data-stale]");
    if (!note) { return; }
    note.textContent = "Couldn't refresh — last updated " + hhmm(lastUpdated) + ". Retrying…";
    note.hidden = false;
    el.classList.add("is-stale");
  }
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.detail.elt && (evt.detail.elt.id === "token-widget" || evt.detail.target.id === "token-widget")) {
      confirmed();
    }
  });

  // --- A changed state (Connected → Renew soon → Expired, …) is announced once; identical polls say nothing. ---
  var lastState = widget() ? widget().getAttribute("data-state") : null;
  document.addEventListener("htmx:afterSettle", function (evt) {
    var el = widget();
    if (!el || evt.target !== el) { return; }  // only the widget's own refreshes
    var state = el.getAttribute("data-state");
    if (state !== lastState) {
      lastState = state;
      var announcer = document.getElementById("token-announcer");
      if (announcer) { announcer.textContent = el.getAttribute("data-announce-text") || ""; }
    }
    // The connection card follows: fetch it again when it still shows the other side of connected/not connected.
    var card = document.getElementById("sage-connection");
    if (card && (card.getAttribute("data-connected") === "yes") !== (state !== "not_connected")) {
      htmx.trigger(card, "panel-refresh");
    }
    if (focusWidgetNext) {
      focusWidgetNext = false;
      el.focus();
    }
  });
  ["htmx:responseError", "htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (evt) {
      var el = evt.detail.elt;
      if (!el || el.id !== "token-widget") { return; }
      var xhr = evt.detail.xhr;
      if (xhr && xhr.status === 401) { return; } // HX-Redirect sends the whole page to sign-in
      markStale();
    });
  });

  window.sagePanel = { refreshNow: refreshNow };
})();
