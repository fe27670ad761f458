// Operator console: the releases and rollout pages refresh their tables from their live JSON every few seconds.
(function () {
  "use strict";
  var releases = document.getElementById("releases-live");
  var rollout = document.getElementById("rollout-live");
  var root = releases || rollout;
  if (!root) return;
  var url = root.getAttribute("data-live-url");
  var every = 1000 * Number(root.getAttribute("data-live-seconds") || "2");
  var ACTIONS = ["pause", "resume", "abort", "rollback"];

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element && element.textContent !== text) element.textContent = text;
  }

  // Replace a table body's rows with one row per item, its cells the item's values under ``keys`` (as text).
  function fill(bodyId, items, keys, attribute) {
    var body = document.getElementById(bodyId);
    if (!body) return;
    var rows = items.map(function (item) {
      var row = document.createElement("tr");
      if (attribute) row.setAttribute("data-" + attribute, String(item[attribute]));
      keys.forEach(function (key) {
        var cell = document.createElement("td");
        cell.textContent = String(item[key]);
        row.appendChild(cell);
      });
      return row;
    });
    body.replaceChildren.apply(body, rows);
  }

  function renderReleases(view) {
    fill("releases-body", view.releases, ["version", "state", "image", "schema", "desired", "observed", "created"], "version");
    fill("fleet-body", view.fleet, ["desired", "observed", "tier", "cell", "state", "count"]);
  }

  function renderRollout(view) {
    setText("rollout-state", view.state);
    setText("rollout-reason", view.reason);
    setText("rollout-targets", String(view.targets));
    setText("rollout-progress", view.progress);
    setText("rollout-updated", view.updated);
    root.setAttribute("data-state", view.state);
    fill("waves-body", view.waves, ["label", "size", "states"], "wave");
    fill("failures-body", view.failures, ["wave", "workspace_id", "state", "reason"]);
    document.getElementById("failures").hidden = view.failures.length === 0;
    document.getElementById("no-failures").hidden = view.failures.length > 0;
    ACTIONS.forEach(function (action) {
      var form = document.getElementById("form-" + action);
      if (form) form.hidden = view.actions.indexOf(action) < 0;
    });
  }

  function poll() {
    fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // Signed out, or gone: the page itself says so (sign-in, or the 404 page).
        if (response.status === 401 || response.status === 404) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (view) {
        if (!view) return;
        (releases ? renderReleases : renderRollout)(view);
        setText("live-status", "Live: updated " + new Date().toLocaleTimeString());
        setTimeout(poll, every);
      })
      .catch(function () {
        setText("live-status", "Live updates interrupted; retrying.");
        setTimeout(poll, every * 2);
      });
  }

  setTimeout(poll, every);
})();
