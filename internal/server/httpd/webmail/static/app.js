// Petrel webmail: the page over /api/ (docs/webmail-api.md). No framework: the DOM is
// built with createElement and textContent only, so no message text is ever parsed as HTML
// here; a message's HTML is shown only in the sandboxed iframe, from the server's sanitiser.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const state = { mailboxes: [], mailbox: null, messages: [], next: 0, cursor: -1, open: null, query: "", selected: new Set(),
    threads: localStorage.getItem("petrel-threads") === "1" };

  // visible is the list as shown: newest first, or, with conversations on, each
  // conversation together (ordered by its newest message), by the server's thread keys,
  // which join messages across the pages loaded.
  function visible() {
    if (!state.threads) return state.messages;
    const groups = new Map();
    for (const m of state.messages) {
      const k = m.thread || "uid:" + m.uid;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(m);
    }
    return Array.from(groups.values()).flat();
  }
  function conversation(m) {
    return m.thread ? state.messages.filter((x) => x.thread === m.thread) : [m];
  }

  async function api(path, opts) {
    opts = opts || {};
    opts.headers = Object.assign({ "X-CSRF-Token": csrf }, opts.headers || {});
    opts.credentials = "same-origin";
    const r = await fetch(path, opts);
    if (r.status === 401) { location.href = "/"; throw new Error("logged out"); }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  const post = (path, obj) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj) });

  function status(msg) {
    $("status").textContent = msg;
    clearTimeout(status.t);
    status.t = setTimeout(() => { $("status").textContent = ""; }, 4000);
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function show(pane) { $("app").className = "show-" + pane; }

  async function loadMailboxes() {
    const r = await api("/api/mailboxes");
    state.mailboxes = r.mailboxes;
    const ul = $("folder-list");
    ul.replaceChildren();
    for (const sel of [$("move-list"), $("view-move")]) {
      sel.replaceChildren(el("option", null, "Move to…"));
      sel.firstChild.value = "";
    }
    for (const m of r.mailboxes) {
      const li = el("li", state.mailbox && state.mailbox.id === m.id ? "current" : "");
      li.dataset.id = m.id;
      li.append(el("span", "name", m.name), el("span", "count", m.unseen ? String(m.unseen) : ""));
      li.addEventListener("click", () => { selectMailbox(m.id); show("list"); });
      ul.append(li);
      for (const sel of [$("move-list"), $("view-move")]) {
        const o = el("option", null, m.name);
        o.value = m.id;
        sel.append(o);
      }
    }
    if (!state.mailbox) {
      const inbox = r.mailboxes.find((m) => m.name === "INBOX") || r.mailboxes[0];
      if (inbox) await selectMailbox(inbox.id);
    }
  }

  async function selectMailbox(id) {
    state.mailbox = state.mailboxes.find((m) => m.id === id) || { id: id };
    state.query = "";
    $("q").value = "";
    document.querySelectorAll("#folder-list li").forEach((li) => li.classList.toggle("current", Number(li.dataset.id) === id));
    await loadList(false);
  }

  async function loadList(more) {
    if (!state.mailbox) return;
    const base = "/api/mailboxes/" + state.mailbox.id + (state.query ? "/search?q=" + encodeURIComponent(state.query) + "&" : "/messages?");
    const r = await api(base + (more && state.next ? "before=" + state.next : ""));
    state.mailbox = Object.assign(state.mailbox, r.mailbox);
    if (!more) { state.messages = []; state.cursor = -1; state.selected.clear(); }
    state.messages = state.messages.concat(r.messages);
    state.next = r.next;
    $("list-title").textContent = state.query ? "Search: " + state.query : r.mailbox.name + " (" + r.mailbox.messages + ")";
    renderList();
  }

  function renderList() {
    const ul = $("messages");
    ul.replaceChildren();
    const shown = visible();
    shown.forEach((m, i) => {
      const li = el("li");
      if (state.threads && i > 0 && m.thread && shown[i - 1].thread === m.thread) li.classList.add("in-thread");
      li.dataset.uid = m.uid;
      if (!m.flags.includes("\\Seen")) li.classList.add("unseen");
      if (m.flags.includes("\\Flagged")) li.classList.add("flagged");
      if (i === state.cursor) li.classList.add("cursor");
      const box = el("input");
      box.type = "checkbox";
      box.checked = state.selected.has(m.uid);
      box.addEventListener("click", (e) => { e.stopPropagation(); toggleSelect(m.uid); });
      const size = state.threads && !li.classList.contains("in-thread") ? conversation(m).length : 1;
      const from = el("span", "from", m.from || "(no sender)");
      if (size > 1) from.append(el("span", "thread-count", String(size)));
      li.append(box, from, el("span", "date", new Date(m.date).toLocaleString()), el("span", "subject", m.subject || "(no subject)"));
      li.addEventListener("click", () => { state.cursor = i; openMessage(m.uid); });
      ul.append(li);
    });
    $("more").hidden = !state.next;
    $("threads").checked = state.threads;
  }

  function toggleSelect(uid) {
    if (state.selected.has(uid)) state.selected.delete(uid); else state.selected.add(uid);
    renderList();
  }

  // showHTML puts a message's HTML document in a new frame in place of the old one. Setting
  // src on the frame that shows the blocked version starts a second navigation in a frame
  // whose first one may still be under way (a click on "Show images" right after the message
  // opened), and a load event of that frame could then belong to either document: a new
  // frame has exactly one navigation and one load event, and no history of the blocked one.
  function showHTML(url) {
    const old = $("m-html");
    const frame = old.cloneNode(false);
    frame.hidden = false;
    frame.src = url;
    old.replaceWith(frame);
  }

  // opening counts the calls of openMessage, so that the answer to an earlier one that
  // arrives late (two clicks in quick succession) does not replace the message shown, or
  // undo a "Show images" given in the meantime.
  let opening = 0;
  async function openMessage(uid) {
    const mb = state.mailbox.id;
    const call = ++opening;
    const m = await api("/api/mailboxes/" + mb + "/messages/" + uid);
    if (call !== opening) return;
    state.open = Object.assign(m, { mailbox: mb });
    $("empty").hidden = true;
    $("message").hidden = false;
    $("m-subject").textContent = m.subject || "(no subject)";
    $("m-from").textContent = m.from.join(", ");
    $("m-to").textContent = m.to.join(", ");
    $("m-cc").textContent = m.cc.join(", ");
    $("m-date").textContent = new Date(m.date).toLocaleString();
    const base = "/api/mailboxes/" + mb + "/messages/" + uid;
    $("m-raw").href = base + "/raw";
    const atts = $("m-attachments");
    atts.replaceChildren();
    for (const a of m.attachments) {
      const li = el("li"), link = el("a", null, a.name);
      link.href = base + "/parts/" + a.part;
      link.download = a.name;
      li.append(link, document.createTextNode(" (" + a.type + ", " + a.size + " bytes)"));
      atts.append(li);
    }
    const frame = $("m-html");
    if (m.has_html) {
      showHTML(base + "/html");
      $("m-text").hidden = true;
      $("m-images").hidden = !m.remote_images;
    } else {
      frame.hidden = true;
      frame.removeAttribute("src");
      $("m-text").hidden = false;
      $("m-text").textContent = m.text;
      $("m-images").hidden = true;
    }
    const conv = $("m-thread");
    conv.replaceChildren();
    const others = conversation(state.messages.find((x) => x.uid === uid) || { uid: uid });
    $("m-conversation").hidden = others.length < 2;
    for (const o of others) {
      const li = el("li", o.uid === uid ? "current" : "");
      li.dataset.uid = o.uid;
      li.append(el("span", "from", o.from || "(no sender)"), document.createTextNode(" · "), el("span", "date", new Date(o.date).toLocaleString()));
      if (o.uid !== uid) li.addEventListener("click", () => openMessage(o.uid));
      conv.append(li);
    }
    show("view");
    renderList();
    if (!m.flags.includes("\\Seen")) {
      await post("/api/mailboxes/" + mb + "/flags", { uids: [uid], add: ["\\Seen"] });
    }
  }

  function targets() {
    if (state.selected.size) return Array.from(state.selected);
    if (state.cursor >= 0 && visible()[state.cursor]) return [visible()[state.cursor].uid];
    return state.open ? [state.open.uid] : [];
  }

  async function act(kind, extra) {
    const uids = targets();
    if (!uids.length || !state.mailbox) return;
    const mb = "/api/mailboxes/" + state.mailbox.id;
    try {
      if (kind === "read") await post(mb + "/flags", { uids, add: ["\\Seen"] });
      if (kind === "unread") await post(mb + "/flags", { uids, remove: ["\\Seen"] });
      if (kind === "flag") {
        const m = state.messages.find((x) => x.uid === uids[0]);
        const on = m && m.flags.includes("\\Flagged");
        await post(mb + "/flags", on ? { uids, remove: ["\\Flagged"] } : { uids, add: ["\\Flagged"] });
      }
      if (kind === "delete") { await post(mb + "/delete", { uids }); status("Deleted " + uids.length); closeView(); }
      if (kind === "move") { await post(mb + "/move", { uids, to: Number(extra) }); status("Moved " + uids.length); closeView(); }
      state.selected.clear();
      await refresh();
    } catch (e) { status(e.message); }
  }

  function closeView() {
    state.open = null;
    $("message").hidden = true;
    $("empty").hidden = false;
    show("list");
  }

  async function refresh() {
    await loadMailboxes();
    await loadList(false);
  }

  // Compose, reply, forward.
  let draft = {};
  function compose(kind) {
    const m = state.open;
    draft = {};
    $("c-to").value = ""; $("c-cc").value = ""; $("c-bcc").value = ""; $("c-subject").value = ""; $("c-body").value = ""; $("c-files").value = "";
    $("c-error").textContent = "";
    if (m && kind !== "new") {
      const quoted = "\n\n" + (m.from[0] || "") + " wrote:\n" + m.text.split("\n").map((l) => "> " + l).join("\n");
      const subj = m.subject || "";
      if (kind === "forward") {
        $("c-subject").value = /^fwd?:/i.test(subj) ? subj : "Fwd: " + subj;
        $("c-body").value = "\n\n---------- Forwarded message ----------\n" + m.text;
        draft.forward_mailbox = m.mailbox; draft.forward_uid = m.uid;
      } else {
        $("c-subject").value = /^re:/i.test(subj) ? subj : "Re: " + subj;
        $("c-to").value = (m.reply_to.length ? m.reply_to : m.from).join(", ");
        if (kind === "replyall") {
          const me = document.querySelector('meta[name="account"]').content.toLowerCase();
          $("c-cc").value = m.to.concat(m.cc).filter((a) => !a.toLowerCase().includes(me)).join(", ");
        }
        $("c-body").value = quoted;
        draft.in_reply_to = m.message_id;
        draft.references = (m.references ? m.references + " " : "") + (m.message_id ? "<" + m.message_id + ">" : "");
        draft.reply_mailbox = m.mailbox; draft.reply_uid = m.uid;
      }
    }
    $("compose").showModal();
    (kind === "new" || kind === "forward" ? $("c-to") : $("c-body")).focus();
  }

  async function submit(asDraft) {
    const fd = new FormData($("compose-form"));
    for (const k in draft) fd.append(k, draft[k]);
    if (asDraft) fd.append("draft", "1");
    try {
      await api("/api/send", { method: "POST", body: fd });
      $("compose").close();
      status(asDraft ? "Draft saved" : "Sent");
      await refresh();
    } catch (e) { $("c-error").textContent = e.message; }
  }

  // Live updates: the store's changes, as server-sent events, refresh what is shown.
  function listen() {
    const es = new EventSource("/api/events");
    let pending = null;
    const later = () => {
      clearTimeout(pending);
      pending = setTimeout(() => { refresh().catch(() => {}); }, 150);
    };
    es.addEventListener("change", later);
    es.addEventListener("resync", later);
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) setTimeout(listen, 5000); };
  }

  // Keyboard shortcuts.
  let gPrefix = false;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t.closest && (t.closest("input, textarea, select, dialog[open]"))) {
      if (e.key === "Escape" && t.id === "q") t.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const shown = visible();
    const move = (d) => {
      if (!shown.length) return;
      state.cursor = Math.max(0, Math.min(shown.length - 1, state.cursor + d));
      renderList();
      const li = $("messages").children[state.cursor];
      if (li) li.scrollIntoView({ block: "nearest" });
    };
    if (gPrefix) {
      gPrefix = false;
      if (e.key === "i") { const inbox = state.mailboxes.find((m) => m.name === "INBOX"); if (inbox) selectMailbox(inbox.id); }
      return;
    }
    const keys = {
      j: () => move(1), k: () => move(-1),
      o: () => shown[state.cursor] && openMessage(shown[state.cursor].uid),
      Enter: () => shown[state.cursor] && openMessage(shown[state.cursor].uid),
      c: () => compose("new"), r: () => state.open && compose("reply"), a: () => state.open && compose("replyall"),
      f: () => state.open && compose("forward"), s: () => act("flag"), u: () => act("unread"),
      x: () => shown[state.cursor] && toggleSelect(shown[state.cursor].uid),
      t: () => setThreads(!state.threads),
      "#": () => act("delete"), Delete: () => act("delete"),
      e: () => { const a = state.mailboxes.find((m) => m.special_use === "\\Archive"); if (a) act("move", a.id); },
      "/": () => $("q").focus(), "?": () => $("help").showModal(), g: () => { gPrefix = true; },
      Escape: closeView,
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });

  document.querySelectorAll("[data-act]").forEach((b) => {
    if (b.tagName === "SELECT") b.addEventListener("change", () => { if (b.value) act("move", b.value); b.value = ""; });
    else b.addEventListener("click", () => act(b.dataset.act));
  });
  document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => {
    const k = b.dataset.view;
    if (k === "delete") act("delete"); else compose(k);
  }));
  $("view-move").addEventListener("change", (e) => { if (e.target.value) act("move", e.target.value); e.target.value = ""; });
  $("select-all").addEventListener("change", (e) => {
    state.selected = new Set(e.target.checked ? state.messages.map((m) => m.uid) : []);
    renderList();
  });
  $("more").addEventListener("click", () => loadList(true));
  function setThreads(on) {
    state.threads = on;
    localStorage.setItem("petrel-threads", on ? "1" : "0");
    state.cursor = -1;
    renderList();
  }
  $("threads").addEventListener("change", (e) => setThreads(e.target.checked));
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    state.query = $("q").value.trim();
    loadList(false).catch((err) => status(err.message));
    show("list");
  });
  $("compose-btn").addEventListener("click", () => compose("new"));
  $("c-send").addEventListener("click", () => submit(false));
  $("c-draft").addEventListener("click", () => submit(true));
  $("c-cancel").addEventListener("click", () => $("compose").close());
  $("load-images").addEventListener("click", () => {
    if (!state.open) return;
    showHTML("/api/mailboxes/" + state.open.mailbox + "/messages/" + state.open.uid + "/html?images=1");
    $("m-images").hidden = true;
  });
  $("back").addEventListener("click", () => show("list"));
  $("menu").addEventListener("click", () => show($("app").className === "show-folders" ? "list" : "folders"));
  $("new-folder").addEventListener("click", async () => {
    const name = prompt("Folder name");
    if (!name) return;
    try { await post("/api/mailboxes", { name }); await loadMailboxes(); } catch (e) { status(e.message); }
  });

  refresh().then(listen).catch((e) => status(e.message));
})();
