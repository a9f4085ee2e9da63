// Live refresh: fetch this page again every few seconds and swap the <main> it renders.
// One renderer (the server's), so the page without JavaScript shows exactly the same.
(function () {
  var main = document.getElementById("page");
  var every = Number(main.dataset.refresh) || 2000;
  var live = document.getElementById("live");
  function tick() {
    // Not while hidden, while text is selected (a digest being copied) or while the pointer
    // rests on a sparkline (its tooltip lists the reasons): a swap would undo them.
    if (document.hidden || String(window.getSelection()) || document.querySelector(".chk:hover")) {
      setTimeout(tick, every);
      return;
    }
    var ctl = new AbortController();
    var t = setTimeout(function () { ctl.abort(); }, every * 2);
    fetch(location.pathname + location.search, { signal: ctl.signal, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("page");
        if (!fresh) throw new Error("no page in the answer");
        main.replaceWith(fresh);
        main = fresh;
        document.title = doc.title;
        mark();
      })
      .catch(function (e) {
        if (live) { live.textContent = "refresh failed: " + e.message + " (retrying)"; live.className = "b down"; }
      })
      .finally(function () { clearTimeout(t); setTimeout(tick, every); });
  }
  function mark() {
    live = document.getElementById("live");
    if (live) { live.textContent = "live (every " + every / 1000 + " s)"; live.className = "b up"; }
  }
  mark();
  setTimeout(tick, every);
})();
