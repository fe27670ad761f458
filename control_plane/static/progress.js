// Provisioning progress: polls the status endpoint and goes to the ready page when done.
(function () {
  "use strict";
  var root = document.getElementById("progress");
  if (!root) return;
  var statusUrl = root.getAttribute("data-status-url");
  var stateText = { done: "done", current: "in progress", waiting: "waiting" };
  var delay = 500;

  function setText(element, text) {
    if (element && element.textContent !== text) element.textContent = text;
  }

  function render(body) {
    setText(document.getElementById("progress-summary"), body.summary);
    setText(document.getElementById("steps-done"), String(body.done));
    body.steps.forEach(function (step) {
      var item = root.querySelector('[data-step="' + step.type + '"]');
      if (!item) return;
      item.className = "step step-" + step.state;
      setText(item.querySelector(".step-state"), stateText[step.state] || step.state);
      setText(item.querySelector(".step-message"), step.message || "");
    });
    var error = document.getElementById("progress-error");
    if (body.error) {
      setText(document.getElementById("progress-error-text"), body.error);
      error.hidden = false;
    } else {
      error.hidden = true;
    }
  }

  function poll() {
    fetch(statusUrl, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // Gone, or signed out (the endpoint then redirects to the sign-in page): let the page decide.
        if (response.status === 404 || response.redirected) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (body) {
        if (!body) return;
        render(body);
        if (body.ready && body.ready_url) { window.location.assign(body.ready_url); return; }
        if (body.ready) return;  // a page that stays (the sales console): nothing more to watch
        delay = 500;
        setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 5000);
        setTimeout(poll, delay);
      });
  }

  setTimeout(poll, delay);
})();
