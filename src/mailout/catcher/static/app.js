// mailout inbox: the message list, the message view and live updates, over the JSON API.
// Everything from a message is put on the page with textContent or as an attribute value of a
// link/iframe we build; nothing is ever parsed as HTML. The HTML body is shown only inside an
// <iframe sandbox> (no scripts, opaque origin) under the server's no-remote CSP.
"use strict";

(function () {
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const state = {
    q: "",
    to: "",
    shown: PAGE,
    messages: [],
    total: 0,
    selected: null, // id of the message in the view
    message: null, // its details
    tab: "html",
    rawLoaded: false,
    fresh: new Set(), // ids added since the last render, highlighted briefly
    listSeq: 0,
    viewSeq: 0,
  };

  // -- helpers ---------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { Accept: "application/json" } }, options));
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        /* not JSON */
      }
      const failure = new Error(message);
      failure.status = response.status;
      throw failure;
    }
    return response.json();
  }

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    const units = ["KB", "MB", "GB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (value < 10 ? value.toFixed(1) : Math.round(value)) + " " + units[unit];
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function formatTime(iso) {
    const date = new Date(iso);
    const now = new Date();
    const time = pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    if (date.toDateString() === now.toDateString()) return time;
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " + time.slice(0, 5);
  }

  function timeElement(iso, long) {
    const node = el("time", "time", long ? new Date(iso).toString() : formatTime(iso));
    node.dateTime = iso;
    node.title = new Date(iso).toString();
    return node;
  }

  function setStatus(text, ok) {
    const live = $("live");
    live.textContent = text;
    live.classList.toggle("ok", !!ok);
  }

  function showError(error) {
    setStatus("error: " + (error && error.message ? error.message : String(error)), false);
  }

  // -- the list --------------------------------------------------------------------------------

  function listQuery() {
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    if (state.to) params.set("to", state.to);
    params.set("limit", String(state.shown));
    return "/api/messages?" + params.toString();
  }

  async function loadList() {
    const seq = ++state.listSeq;
    const data = await api(listQuery());
    if (seq !== state.listSeq) return; // a newer request is on its way
    state.messages = data.messages;
    state.total = data.total;
    renderList();
    $("list").setAttribute("aria-busy", "false");
  }

  function renderList() {
    const list = $("list");
    const hadFocus = list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    clear(list);
    for (const message of state.messages) {
      const item = el("li");
      const link = el("a", "msg");
      link.href = "#/message/" + message.id;
      link.dataset.id = String(message.id);
      if (message.id === state.selected) link.setAttribute("aria-current", "true");
      if (state.fresh.has(message.id)) link.classList.add("fresh");

      const top = el("span", "row");
      top.append(el("span", "from", message.from || "(no sender)"), timeElement(message.date));
      const subject = el("span", "row subject-line");
      subject.append(el("span", "subj", message.subject || "(no subject)"));
      if (message.attachments > 0) {
        const mark = el("span", "clip"); // a paper clip, drawn by CSS (no emoji font needed)
        mark.title = message.attachments + (message.attachments === 1 ? " attachment" : " attachments");
        mark.setAttribute("aria-label", mark.title);
        mark.setAttribute("role", "img");
        subject.append(mark);
      }
      const bottom = el("span", "row small");
      bottom.append(el("span", "to", "to " + message.to.join(", ")), el("span", "size", formatSize(message.size)));
      link.append(top, subject, bottom);
      item.append(link);
      list.append(item);
      if (hadFocus === String(message.id)) link.focus();
    }
    state.fresh.clear();
    const filtered = state.q || state.to;
    $("count").textContent =
      state.total + (state.total === 1 ? " message" : " messages") + (filtered ? " found" : "");
    $("empty").hidden = state.messages.length > 0;
    $("empty").textContent = filtered ? "No message matches." : "No messages yet. Send mail to the SMTP address above.";
    $("more").hidden = state.messages.length >= state.total;
  }

  async function loadInboxes() {
    const data = await api("/api/inboxes");
    const select = $("inbox");
    const current = state.to;
    clear(select);
    const all = el("option", null, "All mail (" + data.total + ")");
    all.value = "";
    select.append(all);
    let found = false;
    for (const inbox of data.inboxes) {
      const option = el("option", null, inbox.address + " (" + inbox.count + ")");
      option.value = inbox.address;
      if (inbox.address === current) found = true;
      select.append(option);
    }
    if (current && !found) {
      const option = el("option", null, current + " (0)");
      option.value = current;
      select.append(option);
    }
    select.value = current;
  }

  let refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      Promise.all([loadList(), loadInboxes()]).catch(showError);
    }, 100);
  }

  // -- the message view ------------------------------------------------------------------------

  const TABS = ["html", "text", "headers", "raw", "parts", "attachments"];

  function selectTab(name, focus) {
    state.tab = name;
    for (const tab of TABS) {
      const button = $("tab-" + tab);
      const selected = tab === name;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $("panel-" + tab).hidden = !selected;
      if (selected && focus) button.focus();
    }
    if (name === "raw") loadRaw().catch(showError);
  }

  function htmlUrl() {
    return "/api/messages/" + state.selected + "/html" + ($("remote").checked ? "?remote=1" : "");
  }

  function closeView() {
    state.selected = null;
    state.message = null;
    $("view").hidden = true;
    $("placeholder").hidden = false;
    $("html-frame").src = "about:blank";
    for (const link of document.querySelectorAll("#list a[aria-current]")) link.removeAttribute("aria-current");
  }

  async function openMessage(id) {
    const seq = ++state.viewSeq;
    state.selected = id;
    for (const link of document.querySelectorAll("#list a.msg")) {
      if (link.dataset.id === String(id)) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
    let message;
    try {
      message = await api("/api/messages/" + id);
    } catch (error) {
      if (error.status === 404) {
        closeView();
        return;
      }
      throw error;
    }
    if (seq !== state.viewSeq) return;
    state.message = message;
    state.rawLoaded = false;
    renderMessage(message);
  }

  function renderMessage(message) {
    $("placeholder").hidden = true;
    $("view").hidden = false;
    $("v-subject").textContent = message.subject || "(no subject)";
    $("v-from").textContent = message.from || "(none)";
    $("v-to").textContent = message.to_header || "(none)";
    $("v-envelope").textContent =
      "MAIL FROM <" + message.envelope.mail_from + "> RCPT TO " + message.envelope.recipients.map((r) => "<" + r + ">").join(", ");
    const date = $("v-date");
    clear(date);
    date.append(timeElement(message.date, true));
    $("v-size").textContent = formatSize(message.size);
    $("v-download").href = "/api/messages/" + message.id + "/raw?download=1";
    $("v-download").setAttribute("download", "message-" + message.id + ".eml");

    const frame = $("html-frame");
    if (message.html !== null) {
      frame.hidden = false;
      $("no-html").hidden = true;
      frame.src = htmlUrl();
    } else {
      frame.hidden = true;
      frame.src = "about:blank";
      $("no-html").hidden = false;
    }
    $("v-text").textContent = message.text !== null ? message.text : "(This message has no plain-text body.)";
    $("v-raw").textContent = "Loading…";

    const headers = $("v-headers");
    clear(headers);
    for (const header of message.headers) {
      const row = el("tr");
      row.append(el("th", null, header.name), el("td", null, header.value));
      row.firstChild.scope = "row";
      headers.append(row);
    }

    const parts = $("v-parts");
    clear(parts);
    for (const part of message.parts) {
      const row = el("tr");
      const path = el("td", "mono", part.path || "(message)");
      path.style.paddingInlineStart = 0.5 + 1.25 * Number(part.depth || 0) + "em";
      const name = el("td");
      if (part.attachment !== null && part.attachment !== undefined) {
        const link = el("a", null, part.filename || "attachment " + part.attachment);
        link.href = "/api/messages/" + message.id + "/attachments/" + part.attachment;
        name.append(link);
      } else {
        name.textContent = part.filename || (part.content_id ? "<" + part.content_id + ">" : "");
      }
      row.append(path, el("td", "mono", part.content_type), name, el("td", "num", formatSize(Number(part.size))));
      parts.append(row);
    }

    const attachments = $("v-attachments");
    clear(attachments);
    for (const attachment of message.attachments) {
      const item = el("li");
      const link = el("a", "download", attachment.name || "attachment-" + attachment.index);
      link.href = attachment.url;
      link.setAttribute("download", attachment.name || "");
      item.append(link, el("span", "mono type", attachment.type), el("span", "size", formatSize(attachment.size)));
      if (attachment.inline) item.append(el("span", "badge", "inline"));
      attachments.append(item);
    }
    $("no-attachments").hidden = message.attachments.length > 0;
    $("att-count").textContent = message.attachments.length ? "(" + message.attachments.length + ")" : "";

    // A message too complex to decode comes with a notice, and is best read raw.
    const notice = $("v-notice");
    notice.textContent = message.notice || "";
    notice.hidden = !message.notice;
    if (message.notice) {
      selectTab("raw");
      return;
    }
    // Stay on the tab the reader chose, except HTML for a message that has none.
    selectTab(message.html === null && state.tab === "html" ? "text" : state.tab);
  }

  async function loadRaw() {
    if (state.rawLoaded || state.selected === null) return;
    const id = state.selected;
    const response = await fetch("/api/messages/" + id + "/raw");
    if (!response.ok) throw new Error("raw source: " + response.status);
    const text = await response.text();
    if (id !== state.selected) return;
    state.rawLoaded = true;
    $("v-raw").textContent = text;
  }

  function route() {
    const match = /^#\/message\/(\d+)$/.exec(location.hash);
    if (match) openMessage(Number(match[1])).catch(showError);
    else closeView();
  }

  // -- live updates ----------------------------------------------------------------------------

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("hello", () => {
      setStatus("live", true);
      scheduleRefresh(); // catch up on anything missed while disconnected
    });
    source.addEventListener("added", (event) => {
      try {
        state.fresh.add(JSON.parse(event.data).id);
      } catch (_) {
        /* ignore */
      }
      scheduleRefresh();
    });
    source.addEventListener("deleted", (event) => {
      let id = null;
      try {
        id = JSON.parse(event.data).id;
      } catch (_) {
        /* ignore */
      }
      if (id !== null && id === state.selected) location.hash = "";
      scheduleRefresh();
    });
    source.addEventListener("cleared", () => {
      if (state.selected !== null) location.hash = "";
      scheduleRefresh();
    });
    source.onerror = () => setStatus("reconnecting…", false);
  }

  // -- wiring ----------------------------------------------------------------------------------

  function init() {
    let searchTimer = null;
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      state.q = $("q").value.trim();
      loadList().catch(showError);
    });
    $("q").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        state.q = $("q").value.trim();
        state.shown = PAGE;
        loadList().catch(showError);
      }, 150);
    });
    $("inbox").addEventListener("change", () => {
      state.to = $("inbox").value;
      state.shown = PAGE;
      loadList().catch(showError);
    });
    $("more").addEventListener("click", () => {
      state.shown += PAGE;
      loadList().catch(showError);
    });
    $("delete-all").addEventListener("click", async () => {
      if (!window.confirm("Delete all messages?")) return;
      try {
        await api("/api/messages", { method: "DELETE" });
        location.hash = "";
        scheduleRefresh();
      } catch (error) {
        showError(error);
      }
    });
    $("v-delete").addEventListener("click", async () => {
      if (state.selected === null) return;
      const id = state.selected;
      const index = state.messages.findIndex((m) => m.id === id);
      const next = state.messages[index + 1] || state.messages[index - 1];
      try {
        await api("/api/messages/" + id, { method: "DELETE" });
      } catch (error) {
        if (error.status !== 404) return showError(error);
      }
      location.hash = next ? "#/message/" + next.id : "";
      scheduleRefresh();
    });
    $("remote").addEventListener("change", () => {
      if (state.message && state.message.html !== null) $("html-frame").src = htmlUrl();
    });

    const tablist = document.querySelector("[role=tablist]");
    for (const name of TABS) $("tab-" + name).addEventListener("click", () => selectTab(name, false));
    tablist.addEventListener("keydown", (event) => {
      const index = TABS.indexOf(state.tab);
      let next = null;
      if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
      else if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
      else if (event.key === "Home") next = TABS[0];
      else if (event.key === "End") next = TABS[TABS.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });

    // j/k or arrows move through the list; "/" jumps to the search box.
    document.addEventListener("keydown", (event) => {
      const target = event.target;
      const typing = target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
      if (event.key === "/" && !typing) {
        event.preventDefault();
        $("q").focus();
        return;
      }
      if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
      const inList = $("list").contains(target);
      let step = 0;
      if (event.key === "j" || (inList && event.key === "ArrowDown")) step = 1;
      if (event.key === "k" || (inList && event.key === "ArrowUp")) step = -1;
      if (!step) return;
      const links = Array.from(document.querySelectorAll("#list a.msg"));
      if (!links.length) return;
      event.preventDefault();
      let index = links.findIndex((link) => link.dataset.id === String(state.selected));
      if (inList) index = links.indexOf(target);
      const next = links[Math.max(0, Math.min(links.length - 1, index + step))];
      next.focus();
      if (!inList || event.key === "j" || event.key === "k") location.hash = next.getAttribute("href");
    });

    window.addEventListener("hashchange", route);

    api("/api/info")
      .then((info) => {
        if (info.smtp) $("smtp").textContent = "· SMTP on " + info.smtp;
      })
      .catch(() => {});
    Promise.all([loadList(), loadInboxes()]).catch(showError);
    route();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
