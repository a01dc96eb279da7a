// Sage panel behaviour that htmx attributes alone cannot express. No inline scripts: CSP forbids them.
(function () {
  "use strict";

  function flash(message, kind) {
    var area = document.getElementById("flash");
    if (!area) { return; }
    var p = document.createElement("p");
    p.className = "flash flash-" + (kind || "error");
    p.textContent = message;
    area.replaceChildren(p);
  }

  // htmx does not swap 4xx/5xx answers: show their message instead of failing silently.
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.status === 401 || xhr.getResponseHeader("HX-Refresh") || xhr.getResponseHeader("HX-Redirect")) { return; }
    if (evt.detail.elt && evt.detail.elt.hasAttribute("data-own-errors")) { return; }
    var text = "Something went wrong (" + xhr.status + "). Nothing was changed; please try again.";
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var msg = doc.querySelector(".error-message");
    if (msg && msg.textContent.trim()) { text = msg.textContent.trim(); }
    flash(text, "error");
  });

  document.addEventListener("htmx:sendError", function (evt) {
    if (evt.detail.elt && evt.detail.elt.hasAttribute("data-own-errors")) { return; }
    flash("Couldn't reach the server. Check your connection and try again.", "error");
  });

  window.panel = { flash: flash };
})();

// Reminders: make status text in swapped fragments ([data-announce]) heard by screen readers. A live region that
// arrives already filled is often not announced, so the text is cleared and put back once the swap has settled.
(function () {
  "use strict";
  document.addEventListener("htmx:afterSettle", function (evt) {
    var root = evt.detail.elt;
    if (!root || !root.querySelectorAll) { return; }
    var regions = Array.prototype.slice.call(root.querySelectorAll("[data-announce]"));
    if (root.matches && root.matches("[data-announce]")) { regions.push(root); }
    regions.forEach(function (region) {
      var text = region.textContent;
      if (!text.trim()) { return; }
      region.textContent = "";
      window.setTimeout(function () { region.textContent = text; }, 50);
    });
  });
})();
