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

// Busy state for slow requests (Check connection): the button says e.g. "Checking…" and the form's status region
// says data-busy-message while the request runs; the answer replaces both. The button stays focusable
// (aria-disabled, not disabled), so focus is not lost to <body>; hx-sync="this:drop" ignores a second press.
(function () {
  "use strict";
  function busyForm(evt) {
    var elt = evt.detail && evt.detail.elt;
    return elt && elt.matches && elt.matches("form[data-busy-message]") ? elt : null;
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = busyForm(evt);
    if (!form) { return; }
    var button = form.querySelector("[data-busy-label]");
    if (button) {
      button.setAttribute("data-idle-label", button.textContent);
      button.textContent = button.getAttribute("data-busy-label");
      button.setAttribute("aria-disabled", "true");
    }
    var card = form.closest("section") || document;
    var status = card.querySelector("[data-busy-status]");
    if (status) {
      status.className = status.className.replace(/\bfield-(ok|error)\b/g, "");
      status.textContent = form.getAttribute("data-busy-message");
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = busyForm(evt);
    var button = form && form.isConnected && form.querySelector("[data-idle-label]");
    if (button) {  // still on the page: the request failed and nothing replaced it
      button.textContent = button.getAttribute("data-idle-label");
      button.removeAttribute("aria-disabled");
    }
  });
})();

// Inline setting fields save on "change" and on "submit"; Enter in a text field fires both with the same value.
// The second, identical request is not sent (hx-sync would abort the first, and the console would log it).
(function () {
  "use strict";
  function values(form) { return new URLSearchParams(new FormData(form)).toString(); }
  document.addEventListener("htmx:confirm", function (evt) {
    var form = evt.detail.elt;
    if (!form || !form.matches || !form.matches("form.setting-field")) { return; }
    if (form.classList.contains("htmx-request") && form.getAttribute("data-sent") === values(form)) {
      evt.preventDefault();  // and never call evt.detail.issueRequest(): dropped
    }
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = evt.detail.elt;
    if (form && form.matches && form.matches("form.setting-field")) { form.setAttribute("data-sent", values(form)); }
  });
})();

// A swapped fragment may name where focus goes next ([data-autofocus], e.g. "Disconnected." or the first row
// "Show more" added), so keyboard and screen-reader users land on what changed, not on <body>.
(function () {
  "use strict";
  document.addEventListener("htmx:afterSettle", function (evt) {
    var root = evt.target;
    if (!root || !root.querySelector) { return; }
    var target = root.matches && root.matches("[data-autofocus]") ? root : root.querySelector("[data-autofocus]");
    if (target) {
      target.removeAttribute("data-autofocus");
      target.focus();
    }
  });
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
