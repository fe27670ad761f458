// Signup form: live address availability (aria-live status beside the field), no double submit.
(function () {
  "use strict";
  var input = document.getElementById("workspace");
  var status = document.getElementById("workspace-status");
  var form = document.getElementById("signup-form");
  if (!input || !status || !form) return;
  var base = input.getAttribute("data-availability-url");
  var suffix = input.getAttribute("data-suffix") || "";
  var timer = null;
  var sequence = 0;

  function show(text, kind) {
    status.textContent = text;
    status.className = "field-status" + (kind ? " " + kind : "");
    if (kind === "unavailable") input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function check() {
    var value = input.value.trim();
    var mine = ++sequence;
    if (!value) { show("", ""); return; }
    fetch(base + encodeURIComponent(value) + "/availability", { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (mine !== sequence) return; // an older answer arriving late
        if (!body) { show("", ""); return; }
        if (body.available) show(body.slug + suffix + " is available", "available");
        else show(body.slug + suffix + " " + body.reason, "unavailable");
      })
      .catch(function () { if (mine === sequence) show("", ""); });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  });
  // A form sent back with the address kept: say again whether it is free (unless it has an error).
  if (input.value.trim() && !input.hasAttribute("aria-invalid")) check();

  form.addEventListener("submit", function () {
    var button = form.querySelector("button[type=submit]");
    if (button) setTimeout(function () { button.disabled = true; }, 0);
  });
})();
