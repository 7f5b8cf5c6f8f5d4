// live.js keeps the task list (/tasks/) and a task's page (/tasks/{id})
// up to date without reloading. It follows the signed-in user's job
// events on the page's event stream (body data-events), and on an event
// for a task the page shows it fetches the page again and swaps in the
// parts that change: the list on /tasks/, the badge, facts, actions and
// history on a task's page. It takes over from the meta
// refresh, which is what pages do without script: browsers keep a
// refresh scheduled even once its tag is removed, so the script removes
// the tag and stops the page's loading (which cancels the refresh) before
// it opens the stream, and reloads the page itself, as the tag would
// have, should the stream not open in that time.
// The same file keeps a running task's "last heard from 3 s ago" true
// between updates, which come only with the task's events: a worker that
// stopped writes none. Every quarter second it counts each such line on
// from the times the server put in it (data-heard, and data-now, the
// server's clock at rendering, which corrects the browser's), and once
// that passes the worker's lease (data-lease-ms) it shows the sentence
// that the worker stopped, as the server would on the next load.
(function () {
  "use strict";
  function ago(ms) {
    var s = Math.floor(Math.max(ms, 0) / 1000);
    if (s < 60) {
      return s + " s ago";
    }
    if (s < 3600) {
      return Math.floor(s / 60) + " min " + (s % 60) + " s ago";
    }
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
  }
  function tick() {
    var lines = document.querySelectorAll(".heard[data-heard][data-now]");
    for (var i = 0; i < lines.length; i++) {
      var el = lines[i];
      if (!el.dataset.skew) {
        // First seen now: how far the browser's clock is from the server's.
        el.dataset.skew = String(Date.parse(el.dataset.now) - Date.now());
      }
      var age = Date.now() + Number(el.dataset.skew) - Date.parse(el.dataset.heard);
      if (isNaN(age)) {
        continue;
      }
      var out = el.querySelector(".ago");
      var text = ago(age);
      if (out && out.textContent !== text) {
        out.textContent = text;
      }
      var lease = Number(el.dataset.leaseMs || 0);
      var lost = el.parentNode && el.parentNode.querySelector(".worker-lost");
      if (lost && lease > 0 && lost.hidden !== !(age > lease)) {
        lost.hidden = !(age > lease);
      }
    }
  }
  tick();
  setInterval(tick, 250);
})();

(function () {
  "use strict";
  var url = document.body && document.body.dataset.events;
  if (!url || !window.EventSource || !window.fetch || !window.DOMParser) {
    return; // the meta refresh goes on
  }
  var pending = {}; // task ids waiting for a re-fetch
  var timer = null;
  var inFlight = false;

  function onPage() {
    var live = document.getElementById("task-live");
    return live ? { task: live.dataset.task } : { list: document.getElementById("task-list") };
  }

  function shows(id) {
    var p = onPage();
    if (p.task) {
      return p.task === id;
    }
    return !!p.list; // a new task of the user's belongs on the list too
  }

  function swap(doc) {
    // The notice tells what became of the task just started or changed.
    var notice = doc.querySelector("p.notice");
    var shown = document.querySelector("p.notice");
    if (notice && shown) {
      shown.replaceWith(document.importNode(notice, true));
    }
    var p = onPage();
    if (p.task) {
      var fresh = doc.getElementById("task-live");
      if (fresh) {
        refill(document.getElementById("task-live"), fresh);
      }
      return;
    }
    // The whole list, not only the rows of the tasks the events were
    // about: one task's new result can expire an older one's (RESULT_KEEP),
    // whose row changes with no event of its own.
    pending = {};
    var list = doc.getElementById("task-list");
    if (list) {
      refill(document.getElementById("task-list"), list);
    }
  }

  // refill gives the region the fresh copy's content. The region itself
  // stays: it is an aria-live region, and screen readers announce changes
  // inside a region they know, not a new one put in its place.
  function refill(region, fresh) {
    region.replaceChildren.apply(region, Array.prototype.slice.call(document.importNode(fresh, true).childNodes));
  }

  function refetch() {
    timer = null;
    if (inFlight) {
      schedule();
      return;
    }
    inFlight = true;
    fetch(location.pathname + location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("status " + resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
        if (onPage().task) {
          pending = {};
        }
      })
      .catch(function () {
        // The next event, or the next page load, tries again.
      })
      .then(function () {
        inFlight = false;
      });
  }

  // schedule gathers a burst of events into one fetch.
  function schedule() {
    if (!timer) {
      timer = setTimeout(refetch, 150);
    }
  }

  var fallback = null;
  var meta = document.querySelector('meta[http-equiv="refresh"]');
  if (meta) {
    var secs = parseInt(meta.getAttribute("content"), 10) || 5;
    meta.remove();
    window.stop();
    fallback = setTimeout(function () { location.reload(); }, secs * 1000);
  }

  var es = new EventSource(url);
  es.addEventListener("open", function () {
    if (fallback) {
      clearTimeout(fallback);
      fallback = null;
    }
    document.body.dataset.live = "open";
  });
  es.addEventListener("task", function (ev) {
    var d;
    try {
      d = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (d && d.task && shows(d.task)) {
      pending[d.task] = true;
      schedule();
    }
  });
})();
