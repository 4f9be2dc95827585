// Warns before the idle timeout signs the visitor out, and keeps the session alive on request.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="session-idle-seconds"]');
  if (!meta) { return; }
  var idle = parseInt(meta.content, 10) * 1000;
  var warnBefore = Math.min(120000, idle / 4);
  var banner = document.getElementById("idle-warning");
  var button = document.getElementById("stay-signed-in");
  var warnTimer = null;
  var endTimer = null;

  function schedule() {
    clearTimeout(warnTimer);
    clearTimeout(endTimer);
    banner.hidden = true;
    warnTimer = setTimeout(function () { banner.hidden = false; }, idle - warnBefore);
    endTimer = setTimeout(function () {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
    }, idle);
  }

  window.portalSession = { touched: schedule };
  button.addEventListener("click", function () {
    fetch("/api/auth/csrf", { credentials: "same-origin" }).then(function (response) {
      if (response.ok) { schedule(); } else { window.location.assign("/login"); }
    });
  });
  schedule();
})();
