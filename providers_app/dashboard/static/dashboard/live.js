/* The dashboard refreshes itself: every few seconds it fetches its body again
   (the live URL: the same figures and charts, drawn at the width the page has
   for them) and swaps it in, without reloading the page. Paused while the tab
   is hidden; a failed fetch is shown, and retried at the next tick. */
(function () {
  "use strict";
  var body = document.getElementById("dashboard-body");
  if (!body) { return; }
  var status = document.getElementById("dashboard-live-status");
  var every = (parseInt(body.getAttribute("data-refresh-s"), 10) || 5) * 1000;
  var busy = false;

  function width() {
    return Math.round(body.getBoundingClientRect().width);
  }

  function say(text) {
    if (status) { status.textContent = text; }
  }

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    var url = body.getAttribute("data-live-url") + "&width=" + width();
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        body.innerHTML = html;
        body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || 0) + 1));
        say("Live: refreshes every " + every / 1000 + " s.");
      })
      .catch(function (error) {
        say("Live refresh failed (" + error.message + "); retrying.");
      })
      .then(function () { busy = false; });
  }

  var lastWidth = width();
  window.addEventListener("resize", function () {
    if (Math.abs(width() - lastWidth) > 40) { lastWidth = width(); refresh(); }
  });
  refresh();  // at once: draws the charts at this screen's width
  window.setInterval(refresh, every);
})();
