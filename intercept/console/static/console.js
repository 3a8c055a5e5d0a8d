// Live updates: each page follows one server-sent event stream (a conversation page its own,
// which also carries the queue's counts; any other page /handoffs/events). "changed" reloads
// the part marked data-events through htmx; "handoffs" (counts only, never a number or a
// message) updates the inbox count in the header, announces new and urgent hand-offs and
// reloads the parts marked data-refresh-on="handoffs". No inline script (the CSP forbids it).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.querySelector("[data-events]");
  var url = box ? box.getAttribute("data-events") : document.body.getAttribute("data-stream");
  if (!url || !window.EventSource) { return; }
  var source = new EventSource(url);
  function refresh(selector) {
    document.querySelectorAll(selector).forEach(function (part) {
      if (window.htmx) { window.htmx.trigger(part, "refresh"); }
    });
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function announce(kind, text) {
    var notice = document.querySelector("[data-notice=" + kind + "]");
    if (!notice) { return; }
    notice.textContent = "";
    var link = document.createElement("a");
    link.href = "/handoffs";
    link.textContent = text;
    notice.appendChild(link);
  }
  source.addEventListener("changed", function () { refresh("[data-events]"); });
  source.addEventListener("gone", function () { source.close(); });
  source.addEventListener("handoffs", function (event) {
    var n = JSON.parse(event.data);
    var count = document.querySelector("[data-inbox-count]");
    if (count) {
      count.textContent = " " + n.open + (n.urgent ? " · " + n.urgent + " urgent" : "");
      count.hidden = n.open === 0;
      count.setAttribute("data-open", String(n.open));
      count.classList.toggle("has-urgent", n.urgent > 0);
    }
    if (n.new_urgent > 0) {
      announce("urgent", "Urgent: " + plural(n.new_urgent, "hand-off") +
               " need" + (n.new_urgent === 1 ? "s" : "") + " an advocate now. Open the inbox.");
    } else if (n.new > 0) {
      announce("new", plural(n.new, "new hand-off") + " in the inbox.");
    }
    refresh("[data-refresh-on=handoffs]");
  });
});
