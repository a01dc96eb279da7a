// Runs in the Sage sign-in window after Sage ID sends it back: tell the page that opened it
// (same origin only), then close. Without an opener this is the main window: nothing to close.
(function () {
  "use strict";
  var main = document.querySelector("[data-sage-callback]");
  if (!main) { return; }
  var result = {
    type: "sage-token-changed",
    ok: main.getAttribute("data-sage-callback") === "ok",
    message: main.getAttribute("data-message"),
    id: String(Date.now()) + Math.random().toString(16).slice(2)
  };
  var told = false;
  try {
    if (window.opener && window.opener.location.origin === window.location.origin) {
      window.opener.postMessage(result, window.location.origin);
      told = true;
    }
  } catch (e) { /* cross-origin opener: never post to it */ }
  if ("BroadcastChannel" in window) {
    var channel = new BroadcastChannel("sage-panel");
    channel.postMessage(result);
    told = true;
  }
  var closeBtn = document.querySelector("[data-close-window]");
  if (closeBtn) { closeBtn.addEventListener("click", function () { window.close(); }); }
  if (told && result.ok) { window.setTimeout(function () { window.close(); }, 150); }
})();
