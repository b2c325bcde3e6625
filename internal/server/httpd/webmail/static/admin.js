// The admin dashboard's live panels: GET /admin/live every few seconds, written into the
// page with textContent only (as app.js does). Deliveries per minute come from the change
// of the total between two reads.
'use strict';
(function () {
  const every = 3000;
  let last = null; // {t, deliveries} of the previous read

  function rows(table, entries) {
    table.replaceChildren();
    for (const [k, v] of entries) {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.append(th, td);
      table.append(tr);
    }
  }

  function age(s) {
    if (!s) return '–';
    if (s < 120) return Math.round(s) + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    return Math.round(s / 3600) + ' h';
  }

  async function poll() {
    try {
      const r = await fetch('/admin/live', {credentials: 'same-origin', cache: 'no-store'});
      if (r.ok) {
        const j = await r.json();
        const v = j.live;
        const t = Date.parse(j.time);
        rows(document.getElementById('live-connections'),
          Object.entries(v.connections).sort().concat([['web sessions', j.web_sessions]]));
        document.getElementById('live-deliveries').textContent = String(v.deliveries);
        document.getElementById('live-failures').textContent = String(v.failures);
        document.getElementById('live-queue').textContent = String(v.queue_messages);
        document.getElementById('live-oldest').textContent = age(v.queue_oldest);
        rows(document.getElementById('live-outbound'), Object.entries(v.outbound).sort());
        if (last && t > last.t) {
          const rate = (v.deliveries - last.deliveries) * 60000 / (t - last.t);
          document.getElementById('live-rate').textContent = rate.toFixed(1);
        }
        last = {t: t, deliveries: v.deliveries};
        document.getElementById('live-time').textContent = new Date(t).toLocaleTimeString();
        document.getElementById('live').dataset.updated = String(t);
      }
    } catch (e) {
      // The server restarting: try again at the next tick.
    }
    setTimeout(poll, every);
  }
  document.addEventListener('DOMContentLoaded', poll);
})();
