// Hive Lab control room views (anywidget ESM). No dependency, nothing fetched: works offline.
// Every string from an agent is set with textContent, never parsed as markup.

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!isFinite(s)) return "";
  if (s < 60) return Math.floor(s) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0");
  return Math.floor(s / 86400) + "d";
}

function button(label, cls, onClick, title) {
  const b = h("button", "hive-btn " + (cls || ""), label);
  b.type = "button";
  if (title) b.title = title;
  b.addEventListener("click", (ev) => { ev.stopPropagation(); onClick(ev); });
  return b;
}

// ---------------------------------------------------------------- Needs you
const NOTIFIED = new Set(); // across every view of the page: one notification per question
let ASKED = false;

function askPermission() {
  if (ASKED || typeof Notification === "undefined") return;
  ASKED = true;
  if (Notification.permission === "default") {
    try { Notification.requestPermission(); } catch (e) { /* old browsers */ }
  }
}

function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.05;
    osc.connect(gain); gain.connect(ctx.destination);
    osc.start(); osc.stop(ctx.currentTime + 0.15);
  } catch (e) { /* no audio */ }
}

function announce(model, card) {
  if (NOTIFIED.has(card.key)) return;
  NOTIFIED.add(card.key);
  if (document.hasFocus() && !document.hidden) return; // the person is looking already
  if (model.get("sound")) beep();
  if (!model.get("notify") || typeof Notification === "undefined") return;
  if (Notification.permission !== "granted") return;
  try {
    const n = new Notification(card.title, { body: card.body, tag: "hive-" + card.key });
    n.onclick = () => { window.focus(); n.close(); };
  } catch (e) { /* blocked */ }
}

function needsCard(model, card, status) {
  const box = h("div", "hive-card hive-card-" + card.kind);
  box.tabIndex = 0;
  box.dataset.key = card.key;
  const head = h("div", "hive-card-head");
  head.append(h("span", "hive-kind", card.kind), h("b", "hive-card-title", card.title),
              h("span", "hive-ago", ago(card.since)));
  box.append(head);
  const send = (action, value) => model.send({ action, key: card.key, value });
  if (card.command) box.append(h("pre", "hive-cmd", card.command));
  if (card.path) box.append(h("div", "hive-path", card.path));
  if (card.content !== undefined) box.append(h("pre", "hive-content", card.content));
  if (card.old !== undefined || card.new !== undefined) {
    const d = h("pre", "hive-content hive-mini-diff");
    for (const l of (card.old || "").split("\n")) d.append(h("div", "hive-del", "- " + l));
    for (const l of (card.new || "").split("\n")) d.append(h("div", "hive-add", "+ " + l));
    box.append(d);
  }
  if (card.question) box.append(h("div", "hive-question", card.question));
  if (!card.command && !card.path && !card.question && card.body)
    box.append(h("pre", "hive-body", card.body));
  const actions = h("div", "hive-actions");
  const answers = card.answers || [];
  if (answers.includes("approve")) actions.append(button("Approve", "hive-ok", () => send("approve"), "a"));
  if (answers.includes("deny")) actions.append(button("Deny", "hive-no", () => send("deny"), "d"));
  for (const c of card.choices || []) {
    const b = button(c.n + ". " + c.label, "hive-choice", () => send("choice", c.n), c.description || String(c.n));
    actions.append(b);
  }
  if (answers.includes("reply")) {
    const input = h("input", "hive-reply");
    input.placeholder = "type a reply (r)";
    input.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter" && input.value.trim()) { send("reply", input.value); input.value = ""; }
      if (ev.key === "Escape") box.focus();
    });
    actions.append(input, button("Send", "", () => { if (input.value.trim()) { send("reply", input.value); input.value = ""; } }));
  }
  if (answers.includes("approve_scope")) {
    actions.append(button("Widen scope", "hive-ok", () => send("approve_scope"), "a"),
                   button("Refuse", "hive-no", () => send("refuse_scope"), "d"));
  }
  if (answers.includes("raise")) {
    const amounts = card.raise_to || {};
    const label = "Raise to " + Object.entries(amounts).map(([k, v]) => (k === "dollars" ? "$" + v : v + " " + k)).join(", ");
    actions.append(button(label, "hive-ok", () => send("raise"), "a"));
  }
  for (const b of card.buttons || []) { // generic answers (pipelines, merges): label + action
    actions.append(button(b.label, b.style === "hive-ok" || b.style === "hive-no" ? b.style : "",
                          () => send(b.action), b.action));
  }
  box.append(actions);
  if (status) box.append(h("div", "hive-status " + (status.ok ? "hive-good" : "hive-bad"), status.message));
  box.addEventListener("keydown", (ev) => {
    if (ev.target !== box || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    let done = true;
    if (k === "a") {
      if (answers.includes("approve")) send("approve");
      else if (answers.includes("approve_scope")) send("approve_scope");
      else if (answers.includes("raise")) send("raise");
      else { const b = (card.buttons || []).find((x) => x.style === "hive-ok"); if (b) send(b.action); }
    } else if (k === "d") {
      if (answers.includes("deny")) send("deny");
      else if (answers.includes("refuse_scope")) send("refuse_scope");
      else { const b = (card.buttons || []).find((x) => x.style === "hive-no"); if (b) send(b.action); }
    } else if (/^[1-9]$/.test(k) && (card.choices || []).some((c) => c.n === Number(k))) send("choice", Number(k));
    else if (k === "r") { const i = box.querySelector("input.hive-reply"); if (i) { ev.preventDefault(); i.focus(); } }
    else if (k === "j" || k === "ArrowDown") { const n = box.nextElementSibling; if (n) n.focus(); }
    else if (k === "k" || k === "ArrowUp") { const p = box.previousElementSibling; if (p) p.focus(); }
    else done = false;
    if (done) { ev.preventDefault(); ev.stopPropagation(); }
  });
  box.addEventListener("click", askPermission);
  return box;
}

function renderNeeds(model, root) {
  const head = h("div", "hive-needs-head");
  const title = h("h3", "hive-h", "Needs you ");
  const badge = h("span", "hive-count", "0");
  title.append(badge);
  const help = h("span", "hive-help",
    "Keys on a focused card: a approve / widen / raise · d deny / refuse · 1-9 pick a choice · r reply · j/k next/previous");
  const bell = button("Enable notifications", "", () => { ASKED = false; askPermission(); });
  const soundBox = h("label", "hive-sub");
  const sound = h("input"); sound.type = "checkbox"; sound.className = "hive-sound";
  sound.checked = !!model.get("sound");
  sound.addEventListener("change", () => { model.set("sound", sound.checked); model.save_changes(); });
  model.on("change:sound", () => { sound.checked = !!model.get("sound"); });
  soundBox.append(sound, document.createTextNode(" sound"));
  head.append(title, help, bell, soundBox);
  const list = h("div", "hive-needs-list");
  const empty = h("div", "hive-empty", "Nobody is waiting for you.");
  root.append(head, empty, list);
  const built = new Map(); // key -> [signature, element]
  let first = true;
  const draw = () => {
    const cards = model.get("cards") || [];
    const status = model.get("status") || {};
    badge.textContent = String(cards.length);
    badge.classList.toggle("hive-count-hot", cards.length > 0);
    empty.style.display = cards.length ? "none" : "";
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".hive-card");
    const focusedKey = focused && list.contains(focused) ? focused.dataset.key : null;
    const keep = new Set();
    cards.forEach((card, i) => {
      keep.add(card.key);
      if (first) NOTIFIED.add(card.key); else announce(model, card);
      const sig = JSON.stringify([card, status[card.key] || null]);
      let entry = built.get(card.key);
      if (!entry || entry[0] !== sig) {
        const el = needsCard(model, card, status[card.key]);
        if (entry) {
          // a reply being typed survives the redraw (an answer's status, a newer question text)
          const was = entry[1].querySelector("input.hive-reply"), now = el.querySelector("input.hive-reply");
          const typing = was && document.activeElement === was;
          if (was && now) now.value = was.value;
          entry[1].replaceWith(el);
          if (typing && now) now.focus();
        }
        entry = [sig, el];
        built.set(card.key, entry);
      }
      if (list.children[i] !== entry[1]) list.insertBefore(entry[1], list.children[i] || null);
    });
    for (const [key, entry] of built) if (!keep.has(key)) { entry[1].remove(); built.delete(key); }
    if (focusedKey && built.has(focusedKey) && document.activeElement !== built.get(focusedKey)[1]
        && !built.get(focusedKey)[1].contains(document.activeElement)) built.get(focusedKey)[1].focus();
    first = false;
  };
  model.on("change:cards", draw);
  model.on("change:status", draw);
  draw();
  const timer = setInterval(() => { for (const e of list.querySelectorAll(".hive-card")) {
    const key = e.dataset.key; const card = (model.get("cards") || []).find((c) => c.key === key);
    const a = e.querySelector(".hive-ago"); if (card && a) a.textContent = ago(card.since); } }, 5000);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------- Fleet
function fleetRow(model, r, selected, checked) {
  const tr = h("tr", "hive-row" + (r.stopped ? " hive-stopped-row" : "") + (r.name === selected ? " hive-selected" : ""));
  tr.dataset.name = r.name;
  const cb = h("input"); cb.type = "checkbox"; cb.checked = checked.has(r.name);
  cb.addEventListener("click", (ev) => { ev.stopPropagation(); cb.checked ? checked.add(r.name) : checked.delete(r.name); });
  const td0 = h("td"); td0.append(cb); tr.append(td0);
  const who = h("td"); who.append(h("b", "hive-name", r.name), h("div", "hive-sub", r.agent)); tr.append(who);
  const st = h("td");
  st.append(h("span", "hive-pill hive-st-" + (r.stopped ? "stopped" : r.state), r.state_label));
  if (r.exit_status !== null && r.exit_status !== undefined)
    st.append(h("span", "hive-exit " + (r.exit_status === 0 ? "hive-good" : "hive-bad"), "exit " + r.exit_status));
  st.append(h("div", "hive-sub", "from " + (r.source || "?")));
  tr.append(st);
  tr.append(h("td", "hive-ago", ago(r.since)));
  const task = h("td"); task.append(h("div", "", r.task || "")); if (r.stage) task.append(h("div", "hive-sub", r.stage)); tr.append(task);
  const doing = h("td"); doing.append(h("div", "", r.last_tool || ""), h("div", "hive-sub hive-clip", r.last_summary || "")); tr.append(doing);
  const git = h("td");
  if (r.branch) git.append(h("div", "", r.branch));
  const gs = [];
  if (r.ahead) gs.push("+" + r.ahead + (r.ahead === 1 ? " commit" : " commits"));
  if (r.changed) gs.push(r.changed + (r.changed === 1 ? " file" : " files"));
  git.append(h("div", "hive-sub", gs.join(" · ")));
  if (r.conflicts) git.append(h("div", "hive-bad", r.conflicts + " predicted conflict" + (r.conflicts > 1 ? "s" : "")));
  tr.append(git);
  const cost = h("td");
  cost.append(h("div", "", r.cost_label || ""));
  if (r.budget_fraction !== null && r.budget_fraction !== undefined) {
    const g = h("div", "hive-gauge");
    const f = h("div", "hive-gauge-fill" + (r.budget_fraction >= 1 ? " hive-over" : r.budget_fraction >= 0.8 ? " hive-warn" : ""));
    f.style.width = Math.min(100, Math.round(r.budget_fraction * 100)) + "%"; g.append(f); g.title = r.budget_label || ""; cost.append(g);
  }
  tr.append(cost);
  tr.append(h("td", "", r.attempts ? String(r.attempts) : ""));
  tr.addEventListener("click", () => model.send({ action: "open", name: r.name }));
  return tr;
}

function renderFleet(model, root) {
  const bar = h("div", "hive-fleet-bar");
  const filter = h("input", "hive-filter");
  filter.placeholder = "filter: name, state, repo, task…";
  const sort = h("select", "hive-sort");
  for (const [v, l] of [["state", "sort: needs attention"], ["name", "sort: name"], ["since", "sort: longest in state"], ["cost", "sort: cost"]]) {
    const o = h("option", "", l); o.value = v; sort.append(o);
  }
  const selectAll = h("input"); selectAll.type = "checkbox"; selectAll.title = "select all shown";
  const stop = button("Stop selected", "hive-no", () => model.send({ action: "stop", names: picked() }));
  const dismiss = button("Dismiss stopped", "", () => model.send({ action: "dismiss" }));
  const clean = button("Clean up finished worktrees", "", () => model.send({ action: "cleanup", names: picked() }));
  bar.append(selectAll, filter, sort, stop, dismiss, clean);
  const body = h("div", "hive-fleet-body");
  root.append(bar, body);
  const checked = new Set();
  const picked = () => [...checked];
  const built = new Map(); // name -> [signature, <tr>]
  const sections = new Map(); // repo -> {sec, head, table}
  const empty = h("div", "hive-empty", "No agents yet.");
  root.append(empty);
  const rank = { waiting: 0, error: 1, working: 2, starting: 3, idle: 4, exited: 5 };
  let shown = [];
  const draw = () => {
    const rows = model.get("rows") || [];
    const q = filter.value.trim().toLowerCase();
    shown = rows.filter((r) => !q || [r.name, r.state, r.repo, r.task, r.agent, r.branch, r.last_tool].some((v) => v && String(v).toLowerCase().includes(q)));
    const by = sort.value;
    shown.sort((a, b) => by === "name" ? a.name.localeCompare(b.name)
      : by === "cost" ? (b.cost || 0) - (a.cost || 0)
      : by === "since" ? String(a.since || "").localeCompare(String(b.since || ""))
      : ((a.stopped ? 9 : rank[a.state] ?? 6) - (b.stopped ? 9 : rank[b.state] ?? 6)) || a.name.localeCompare(b.name));
    const groups = new Map();
    for (const r of shown) { const g = r.repo || "(no repository)"; if (!groups.has(g)) groups.set(g, []); groups.get(g).push(r); }
    const selected = model.get("selected");
    // only rows whose data changed are rebuilt; the others are moved into place
    const keepRows = new Set(), keepGroups = new Set();
    let gi = 0;
    for (const [repo, items] of groups) {
      keepGroups.add(repo);
      let g = sections.get(repo);
      if (!g) {
        const sec = h("div", "hive-group");
        const head = h("div", "hive-group-head");
        const table = h("table", "hive-fleet");
        const tr0 = h("tr");
        for (const c of ["", "Agent", "State", "For", "Task", "Doing", "Git", "Cost", "Tries"]) tr0.append(h("th", "", c));
        table.append(tr0);
        sec.append(head, table);
        g = { sec, head, table };
        sections.set(repo, g);
      }
      g.head.textContent = repo + " · " + items.length;
      if (body.children[gi] !== g.sec) body.insertBefore(g.sec, body.children[gi] || null);
      gi++;
      items.forEach((r, i) => {
        keepRows.add(r.name);
        const sig = JSON.stringify(r) + (r.name === selected) + checked.has(r.name);
        let entry = built.get(r.name);
        if (!entry || entry[0] !== sig) {
          const tr = fleetRow(model, r, selected, checked);
          if (entry) entry[1].replaceWith(tr);
          entry = [sig, tr];
          built.set(r.name, entry);
        }
        const at = g.table.children[i + 1];
        if (at !== entry[1]) g.table.insertBefore(entry[1], at || null);
      });
      while (g.table.children.length > items.length + 1) g.table.lastChild.remove();
    }
    for (const [repo, g] of sections) if (!keepGroups.has(repo)) { g.sec.remove(); sections.delete(repo); }
    for (const [name] of built) if (!keepRows.has(name)) built.delete(name);
    empty.style.display = rows.length ? "none" : "";
  };
  selectAll.addEventListener("change", () => { for (const r of shown) selectAll.checked ? checked.add(r.name) : checked.delete(r.name); draw(); });
  filter.addEventListener("input", draw);
  filter.addEventListener("keydown", (ev) => ev.stopPropagation());
  sort.addEventListener("change", draw);
  model.on("change:rows", draw);
  model.on("change:selected", draw);
  model.on("msg:custom", (msg) => {
    if (!msg || !Array.isArray(msg.rows_patch)) return;
    const patch = new Map(msg.rows_patch.map((r) => [r.name, r]));
    model.set("rows", (model.get("rows") || []).map((r) => patch.get(r.name) || r)); // local only
  });
  draw();
  const timer = setInterval(() => { for (const td of body.querySelectorAll("tr.hive-row")) {
    const r = (model.get("rows") || []).find((x) => x.name === td.dataset.name);
    if (r) td.children[3].textContent = ago(r.since); } }, 5000);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------- Terminal (ANSI SGR -> spans)
const BASE = ["#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"];
function xterm(n) {
  if (n < 16) return BASE[n];
  if (n < 232) { n -= 16; const v = [0, 95, 135, 175, 215, 255]; return `rgb(${v[Math.floor(n / 36)]},${v[Math.floor(n / 6) % 6]},${v[n % 6]})`; }
  const g = 8 + (n - 232) * 10; return `rgb(${g},${g},${g})`;
}

export function ansiToNodes(text) {
  const out = [];
  let st = {};
  const re = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()][0-9A-Za-z]|\x1b[@-_]/g;
  let last = 0, m;
  const push = (s) => {
    if (!s) return;
    s = s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
    const span = h("span", "", s);
    let fg = st.fg, bg = st.bg;
    if (st.inverse) { [fg, bg] = [bg || "#1e1e1e", fg || "#e5e5e5"]; }
    if (fg) span.style.color = fg;
    if (bg) span.style.backgroundColor = bg;
    if (st.bold) span.style.fontWeight = "bold";
    if (st.dim) span.style.opacity = "0.7";
    if (st.italic) span.style.fontStyle = "italic";
    if (st.underline) span.style.textDecoration = "underline";
    out.push(span);
  };
  while ((m = re.exec(text)) !== null) {
    push(text.slice(last, m.index));
    last = re.lastIndex;
    if (m[2] !== "m") continue;
    const ps = (m[1] || "0").split(/[;:]/).map((x) => (x === "" ? 0 : Number(x)));
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (p === 0) st = {};
      else if (p === 1) st.bold = true; else if (p === 2) st.dim = true; else if (p === 3) st.italic = true;
      else if (p === 4) st.underline = true; else if (p === 7) st.inverse = true;
      else if (p === 22) { st.bold = false; st.dim = false; } else if (p === 23) st.italic = false;
      else if (p === 24) st.underline = false; else if (p === 27) st.inverse = false;
      else if (p >= 30 && p <= 37) st.fg = BASE[p - 30]; else if (p >= 90 && p <= 97) st.fg = BASE[p - 82];
      else if (p >= 40 && p <= 47) st.bg = BASE[p - 40]; else if (p >= 100 && p <= 107) st.bg = BASE[p - 92];
      else if (p === 39) st.fg = undefined; else if (p === 49) st.bg = undefined;
      else if ((p === 38 || p === 48) && ps[i + 1] === 5) { st[p === 38 ? "fg" : "bg"] = xterm(ps[i + 2] & 255); i += 2; }
      else if ((p === 38 || p === 48) && ps[i + 1] === 2) { st[p === 38 ? "fg" : "bg"] = `rgb(${ps[i + 2] & 255},${ps[i + 3] & 255},${ps[i + 4] & 255})`; i += 4; }
    }
  }
  push(text.slice(last));
  return out;
}

function renderTerminal(model, root) {
  const head = h("div", "hive-term-head");
  const pre = h("pre", "hive-term");
  const wrap = h("label", "hive-sub");
  const cb = h("input"); cb.type = "checkbox"; cb.checked = true;
  wrap.append(cb, document.createTextNode(" wrap long lines"));
  cb.addEventListener("change", () => pre.classList.toggle("hive-nowrap", !cb.checked));
  head.append(h("span", "hive-term-name", ""), wrap);
  root.append(head, pre);
  const draw = () => {
    head.firstChild.textContent = model.get("name") ? "terminal of " + model.get("name") : "";
    pre.replaceChildren(...ansiToNodes(model.get("text") || ""));
    pre.dataset.version = String(model.get("version"));
  };
  model.on("change:text", draw);
  model.on("change:name", draw);
  draw();
  // follow only while shown: tell the kernel whether the terminal is on screen
  let obs = null;
  if (typeof IntersectionObserver !== "undefined") {
    obs = new IntersectionObserver((entries) => {
      const vis = entries.some((e) => e.isIntersecting);
      if (model.get("visible") !== vis) { model.set("visible", vis); model.save_changes(); }
    });
    obs.observe(pre);
  } else { model.set("visible", true); model.save_changes(); }
  return () => { if (obs) obs.disconnect(); model.set("visible", false); model.save_changes(); };
}

// ---------------------------------------------------------------- Diff with a small highlighter
const KEYWORDS = new Set(("and as assert async await break case catch class const continue def default del do elif else " +
  "enum except export extends false False finally fn for from func function go if impl import in interface is " +
  "lambda let match mod mut new nil None not null or package pass pub raise return self static struct super " +
  "switch this throw true True try type typeof use var void while with yield").split(" "));
const TOKEN = /(\/\/.*$|#.*$)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?)|(\b\d[\d_.xXa-fA-F]*\b)|([A-Za-z_$][\w$]*)/g;

export function highlight(code, commentHash) {
  const out = [];
  let last = 0, m;
  TOKEN.lastIndex = 0;
  while ((m = TOKEN.exec(code)) !== null) {
    if (m[0] === "") { TOKEN.lastIndex++; continue; }
    if (m[1] && m[1][0] === "#" && !commentHash) { continue; }
    if (m.index > last) out.push(document.createTextNode(code.slice(last, m.index)));
    const cls = m[1] ? "hl-com" : m[2] ? "hl-str" : m[3] ? "hl-num" : KEYWORDS.has(m[4]) ? "hl-kw" : null;
    out.push(cls ? h("span", cls, m[0]) : document.createTextNode(m[0]));
    last = TOKEN.lastIndex;
    if (m[1]) break;
  }
  if (last < code.length) out.push(document.createTextNode(code.slice(last)));
  return out;
}

function renderDiff(model, root) {
  const draw = () => {
    const files = model.get("files") || [];
    root.replaceChildren();
    const note = model.get("note");
    if (note) root.append(h("div", "hive-sub", note));
    if (!files.length) root.append(h("div", "hive-empty", model.get("empty") || "No changes against the base."));
    for (const f of files) {
      const box = h("details", "hive-diff-file"); box.open = files.length <= 12;
      const sum = h("summary", "");
      sum.append(h("b", "hive-diff-path", f.path), h("span", "hive-add", " +" + f.added), h("span", "hive-del", " -" + f.removed));
      box.append(sum);
      const hashComments = /\.(py|sh|rb|toml|ya?ml|r|pl|conf|cfg|mk)$|Makefile|Dockerfile/i.test(f.path);
      const pre = h("pre", "hive-diff");
      for (const l of f.lines) {
        const kind = l[0] === "+" ? "hive-line-add" : l[0] === "-" ? "hive-line-del" : l[0] === "@" ? "hive-line-hunk" : "hive-line";
        const row = h("div", kind);
        if (kind === "hive-line-hunk") row.textContent = l;
        else { row.append(h("span", "hive-sign", l[0] || " ")); row.append(...highlight(l.slice(1), hashComments)); }
        pre.append(row);
      }
      box.append(pre);
      root.append(box);
    }
  };
  model.on("change:files", draw);
  model.on("change:note", draw);
  draw();
}

export default {
  render({ model, el }) {
    const root = h("div", "hive-room-view hive-view-" + model.get("kind"));
    root.setAttribute("data-lm-suppress-shortcuts", "true"); // our keys are not JupyterLab's
    el.append(root);
    const kind = model.get("kind");
    if (kind === "needs") return renderNeeds(model, root);
    if (kind === "fleet") return renderFleet(model, root);
    if (kind === "terminal") return renderTerminal(model, root);
    if (kind === "diff") return renderDiff(model, root);
    root.textContent = "unknown view";
  },
};
