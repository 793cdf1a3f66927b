// Counts down a code's remaining validity; the server's "now" anchors it (no client clock trust).
(function () {
  "use strict";
  var el = document.querySelector("[data-expires-at]");
  if (!el) { return; }
  var remaining = parseInt(el.dataset.expiresAt, 10) - parseInt(el.dataset.now, 10);
  var started = Date.now();
  var out = el.querySelector(".remaining");
  function tick() {
    var left = remaining - Math.floor((Date.now() - started) / 1000);
    if (left <= 0) {
      el.classList.add("expired");
      el.textContent = "expired";
      return;
    }
    var m = Math.floor(left / 60), s = left % 60;
    out.textContent = m + ":" + (s < 10 ? "0" : "") + s;
    window.setTimeout(tick, 1000);
  }
  tick();
})();
