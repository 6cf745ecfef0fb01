// Task Scheduler dashboard: row selection, copy buttons, and the live poll (paused while rows
// are selected or a form is being filled). No inline script: the page's CSP forbids it.
"use strict";
(function () {
  var POLL_MS = 5000;

  function selectedRows() {
    return document.querySelectorAll("input.row-select:checked").length;
  }

  function updateSelectionNote() {
    var note = document.getElementById("selection-note");
    if (note) {
      var n = selectedRows();
      note.textContent = n ? n + " selected: live updates paused" : "";
    }
  }

  function wireSelection() {
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("input.row-select").forEach(function (box) { box.checked = all.checked; });
        updateSelectionNote();
      });
    }
    document.querySelectorAll("input.row-select").forEach(function (box) {
      box.addEventListener("change", updateSelectionNote);
    });
  }

  function wireCopy() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(source.textContent).then(function () {
          button.textContent = "Copied";
        }, function () { button.textContent = "Copy failed: select the text"; });
      });
    });
  }

  function busy() {
    var active = document.activeElement;
    var typing = active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "checkbox";
    return selectedRows() > 0 || typing || document.hidden;
  }

  function poll(url) {
    var last = null;
    function tick() {
      if (busy()) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          var marker = JSON.stringify(data.counts);
          Object.keys(data.counts).forEach(function (status) {
            var cell = document.querySelector('[data-count="' + status + '"]');
            var bound = (data.upper_bounds || []).indexOf(status) >= 0 ? "\u2264 " : "";
            if (cell) { cell.textContent = bound + Number(data.counts[status]).toLocaleString("en"); }
          });
          if (last !== null && marker !== last && document.body.getAttribute("data-page") === "timers" && !busy()) {
            window.location.reload();
          }
          last = marker;
        })
        .catch(function () { /* the next tick tries again */ });
    }
    tick();
    window.setInterval(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireSelection();
    wireCopy();
    var live = document.body.getAttribute("data-live");
    var page = document.body.getAttribute("data-page");
    if (live && (page === "overview" || page === "timers")) { poll(live); }
  });
})();
