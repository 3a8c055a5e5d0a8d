// Live transcript: the server says "changed" over server-sent events and htmx reloads the
// part of the page marked data-events. No inline script anywhere (the CSP forbids it).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-events]").forEach(function (box) {
    var source = new EventSource(box.getAttribute("data-events"));
    source.addEventListener("changed", function () {
      if (window.htmx) { window.htmx.trigger(box, "refresh"); }
    });
    source.addEventListener("gone", function () { source.close(); });
  });
});
