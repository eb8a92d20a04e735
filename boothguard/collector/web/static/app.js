// boothguard dashboard: local time formatting, live alert updates, small conveniences.
// Loaded from /static (CSP script-src 'self'); no inline script anywhere.
(function () {
  "use strict";
  var lang = document.body.dataset.lang || "ja";
  var zone = "UTC";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }

  // The server formats chart axes and printable pages in this zone.
  if (document.cookie.indexOf("bg_tz=" + zone) < 0) {
    document.cookie = "bg_tz=" + zone + "; path=/; max-age=31536000; samesite=strict";
  }

  var fmt = new Intl.DateTimeFormat(lang === "ja" ? "ja-JP" : "en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: zone
  });

  function localTimes(root) {
    var els = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var d = new Date(els[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        els[i].textContent = fmt.format(d);
        els[i].title = els[i].getAttribute("datetime");
      }
    }
    var tz = document.querySelectorAll("[data-tz]");
    for (var j = 0; j < tz.length; j++) { tz[j].textContent = zone; }
  }

  function autosubmit() {
    var els = document.querySelectorAll("select[data-autosubmit]");
    for (var i = 0; i < els.length; i++) {
      els[i].addEventListener("change", function (ev) { ev.target.form.submit(); });
    }
  }

  function printButtons() {
    var els = document.querySelectorAll("[data-print]");
    for (var i = 0; i < els.length; i++) {
      els[i].addEventListener("click", function () { window.print(); });
    }
  }

  function ids(root) {
    var out = {};
    var rows = root.querySelectorAll("tr[data-alert-id]");
    for (var i = 0; i < rows.length; i++) { out[rows[i].dataset.alertId] = rows[i].className; }
    return out;
  }

  // Live alerts inbox: poll the rows fragment (same filters) and swap it in when it changed.
  function live() {
    var body = document.querySelector("[data-live]");
    if (!body) { return; }
    var status = document.querySelector("[data-live-status]");
    var src = body.getAttribute("data-live");
    var last = body.innerHTML;
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(src, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) {
            window.location.href = "/login?expired=1&next=" + encodeURIComponent(location.pathname + location.search);
            throw new Error("session expired");
          }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          if (status) { status.classList.remove("offline"); status.dataset.updated = String(Date.now()); }
          if (html === last) { return; }
          var before = ids(body);
          last = html;
          body.innerHTML = html;
          var rows = body.querySelectorAll("tr[data-alert-id]");
          for (var i = 0; i < rows.length; i++) {
            if (!(rows[i].dataset.alertId in before)) { rows[i].classList.add("fresh"); }
          }
          localTimes(body);
        })
        .catch(function () { if (status) { status.classList.add("offline"); } })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, 2000);
  }

  localTimes(document);
  autosubmit();
  printButtons();
  live();
})();
