// The dashboard's only script: applies the server's live updates (server-sent events), confirms and sends
// actions, follows logs, and adds keyboard shortcuts. Every fragment it inserts was rendered (and escaped)
// by the server's templates; nothing here builds HTML from data.
"use strict";
(() => {
  const main = document.getElementById("main");
  const notice = document.getElementById("notice");

  function say(text, bad) {
    notice.textContent = text;
    notice.hidden = !text;
    notice.classList.toggle("bad", Boolean(bad));
  }

  function element(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function byKey(container, key) {
    return container.querySelector(`[data-key="${CSS.escape(key)}"]`);
  }

  // A list row changed or appeared: replace it, or put it where the API's key order puts it.
  function upsertRow(key, html) {
    const rows = document.getElementById("rows");
    if (!rows) return;
    const row = element(html);
    const existing = byKey(rows, key);
    if (existing) {
      existing.replaceWith(row);
      return;
    }
    const after = Array.from(rows.children).find((tr) => tr.dataset.key > key);
    rows.insertBefore(row, after || null);
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  }

  // The overview's chart: reconcile actions and errors per interval since the page opened.
  const samples = [];
  function plot(sample) {
    samples.push(sample);
    if (samples.length > 61) samples.shift();
    const text = document.getElementById("stats-text");
    if (text) text.textContent = `${sample.processed} reconciles, ${sample.actions} actions, ${sample.errors} errors in all.`;
    const deltas = samples.slice(1).map((s, i) => [s.actions - samples[i].actions, s.errors - samples[i].errors]);
    const top = Math.max(1, ...deltas.map((d) => Math.max(d[0], d[1])));
    const points = (index) => deltas.map((d, i) => `${i * 10},${120 - (110 * Math.max(0, d[index])) / top}`).join(" ");
    const actions = document.getElementById("chart-actions");
    const errors = document.getElementById("chart-errors");
    if (actions) actions.setAttribute("points", points(0));
    if (errors) errors.setAttribute("points", points(1));
  }

  function listen(url) {
    const source = new EventSource(url);
    const data = (handler) => (event) => handler(JSON.parse(event.data));
    source.addEventListener("open", () => { document.body.dataset.live = "open"; });
    source.addEventListener("row", data((d) => upsertRow(d.key, d.html)));
    source.addEventListener("gone", data((d) => {
      const row = byKey(document, d.key);
      if (row) row.classList.add("gone");
      if (!document.getElementById("rows")) say("This object has been deleted.", true);
    }));
    source.addEventListener("html", data((d) => {
      const target = document.getElementById(d.target);
      if (target) target.innerHTML = d.html;
    }));
    source.addEventListener("event", data((d) => {
      const events = document.getElementById("events");
      if (events && !byKey(events, d.key)) events.appendChild(element(d.html));
    }));
    source.addEventListener("sample", data(plot));
    source.addEventListener("stale", data((d) => { say(d.message, true); source.close(); }));
    source.addEventListener("problem", data((d) => say(d.message, true)));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) say("Live updates stopped (your session may have ended): reload the page.", true);
    });
    return source;
  }

  if (main.dataset.live) listen(main.dataset.live);

  // Actions: confirmed in the dialog, then sent with the dashboard's header; the answer is announced.
  const dialog = document.getElementById("confirm");
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, target } = button.dataset;
    document.getElementById("confirm-text").textContent = `${action[0].toUpperCase()}${action.slice(1)} workload ${target}?`;
    document.getElementById("confirm-ok").textContent = `${action[0].toUpperCase()}${action.slice(1)}`;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      // back to the button, or (a live update re-rendered the buttons meanwhile) to the first of them
      const again = document.body.contains(button) ? button : document.querySelector("#actions button");
      if (again) again.focus();
      if (dialog.returnValue !== "ok") return;
      const response = await fetch(`/ui/actions/${target}/${action}`, {
        method: "POST", headers: { "X-Persys-UI": "1" }, credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      say(response.ok ? `${target}: ${body.message}` : `${target}: ${body.message || response.statusText} (${response.status})`, !response.ok);
    };
    dialog.showModal();
  });

  // Logs: follow new lines while the box is checked.
  const follow = document.getElementById("follow");
  const log = document.getElementById("log");
  let following = null;
  if (follow && log) {
    follow.addEventListener("change", () => {
      if (following) following.close();
      following = null;
      if (!follow.checked) return;
      following = new EventSource(follow.dataset.follow);
      following.addEventListener("line", (event) => {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(`${JSON.parse(event.data).text}\n`);
        if (atEnd) log.scrollTop = log.scrollHeight;
      });
      following.addEventListener("problem", (event) => say(JSON.parse(event.data).message, true));
    });
    if (location.hash === "#logs") document.getElementById("logs").focus();
  }

  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
    location.assign("/ui/");
  });

  // "/" jumps to the search box, as on GitHub.
  document.addEventListener("keydown", (event) => {
    const search = document.getElementById("f-search");
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "/" && search && !typing) {
      event.preventDefault();
      search.focus();
    }
  });
})();
