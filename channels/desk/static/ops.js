// omnirouter ops console (/ops). Served as a file so the page's policy can forbid inline
// script (script-src 'self'); charts are small SVGs built here, nothing is loaded from a CDN.
//
//   GET /v1/queues/live (WebSocket, the login cookie)  live figures per queue and channel,
//       pushed when they change: service level chart, figures table, agents-by-state chart
//   GET /v1/analytics/heatmap?by=category&bucket=hour&since=24h   the heat map, every 30 s
//   GET /v1/queues, /v1/alerts, /v1/agents, /v1/ops/lag          tables, every 2 s
//
// Every drawn mark carries data-* attributes (scope, value) so tests and tools read what is
// shown, not pixels.
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const get = async (p) => { const r = await fetch(p, {credentials: "same-origin"}); if (!r.ok) throw Object.assign(new Error(r.statusText), {status: r.status}); return r.json(); };
  const QUEUE_NAMES = {product: "产品咨询", transaction: "交易操作", account: "账户管理", complaint: "投诉与建议", technical: "技术故障", unclear: "未分类"};
  const CHANNEL_NAMES = {chat: "在线", app: "App", email: "邮件", phone: "电话"};
  const STATES = [["available", "空闲", "#4caf50"], ["on_contact", "通话中", "#b3261e"], ["after_contact_work", "话后", "#f9a825"], ["away", "离开", "#9e9e9e"], ["offline", "下线", "#d7d7d7"]];
  const pct = (v) => (v === null || v === undefined ? "—" : Math.round(v * 100) + "%");
  const secs = (v) => (v === null || v === undefined ? "—" : Math.round(v) + "s");

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function label(s) { return s.kind === "queue" ? (QUEUE_NAMES[s.name] || s.name) : "渠道·" + (CHANNEL_NAMES[s.name] || s.name); }
  function scopes(f) {
    return [
      ...(f.queues || []).map((q) => ({kind: "queue", name: q.queue, ...q})),
      ...(f.channels || []).map((c) => ({kind: "channel", name: c.channel, ...c})),
    ];
  }

  // Horizontal bars: service level per scope against its threshold (no answers: no bar).
  function serviceLevel(f) {
    const rows = scopes(f), h = 20, left = 110, width = 560;
    const svg = el("svg", {role: "img", "aria-label": "service level", width: left + width + 60, height: rows.length * h + 8});
    rows.forEach((s, i) => {
      const y = i * h, v = s.service_level;
      svg.appendChild(el("text", {x: left - 6, y: y + 14, "text-anchor": "end"}, label(s)));
      svg.appendChild(el("rect", {x: left, y: y + 3, width, height: h - 6, fill: "#f0ebf2"}));
      const bar = el("rect", {x: left, y: y + 3, width: v === null || v === undefined ? 0 : Math.round(width * v), height: h - 6, fill: v !== null && v !== undefined && v < 0.8 ? "#f9a825" : "#4caf50",
        "data-testid": "sl-bar", "data-scope": s.kind + ":" + s.name, "data-value": v === null || v === undefined ? "" : v, "data-answered": s.answered});
      bar.appendChild(el("title", {}, `${label(s)}: ${pct(v)} 在 ${s.service_level_threshold_s || 60}s 内接起（${s.answered || 0} 次）`));
      svg.appendChild(bar);
      svg.appendChild(el("text", {x: left + width + 6, y: y + 14}, pct(v)));
    });
    $("sl").replaceChildren(svg);
  }

  // One row per scope with every live figure, each cell named by data-field.
  function table(f) {
    const cell = (field, v, text) => `<td class="num" data-field="${field}" data-value="${esc(v ?? "")}">${esc(text)}</td>`;
    $("figures").innerHTML = scopes(f).map((s) => {
      const a = s.agents || {};
      return `<tr data-testid="figures-row" data-scope="${esc(s.kind + ":" + s.name)}"><td>${esc(label(s))}</td>` +
        cell("waiting", s.waiting, s.waiting ?? 0) + cell("oldest_wait_s", s.oldest_wait_s, secs(s.oldest_wait_s)) +
        cell("service_level", s.service_level, pct(s.service_level)) + cell("abandonment_rate", s.abandonment_rate, pct(s.abandonment_rate) + ` (${s.abandoned || 0})`) +
        cell("aht_s", s.aht_s, secs(s.aht_s)) + cell("csat", s.csat, pct(s.csat) + ` (${s.csat_n || 0})`) +
        cell("agents", STATES.map(([k]) => a[k] || 0).join("/"), STATES.map(([k]) => a[k] || 0).join(" / ")) + "</tr>";
    }).join("");
  }

  // Stacked bars: agents by state for each queue.
  function agents(f) {
    const rows = (f.queues || []), h = 18, left = 110, width = 420;
    const peak = Math.max(1, ...rows.map((q) => STATES.reduce((n, [k]) => n + ((q.agents || {})[k] || 0), 0)));
    const svg = el("svg", {role: "img", "aria-label": "agents by state", width: left + width + 200, height: rows.length * h + 26});
    rows.forEach((q, i) => {
      const y = i * h;
      svg.appendChild(el("text", {x: left - 6, y: y + 13, "text-anchor": "end"}, QUEUE_NAMES[q.queue] || q.queue));
      let x = left;
      for (const [k, name, color] of STATES) {
        const n = (q.agents || {})[k] || 0, w = Math.round(width * n / peak);
        const seg = el("rect", {x, y: y + 3, width: w, height: h - 6, fill: color, "data-testid": "agents-seg", "data-queue": q.queue, "data-state": k, "data-value": n});
        seg.appendChild(el("title", {}, `${QUEUE_NAMES[q.queue] || q.queue} ${name}: ${n}`));
        svg.appendChild(seg); x += w;
      }
    });
    STATES.forEach(([, name, color], i) => {
      svg.appendChild(el("rect", {x: left + i * 80, y: rows.length * h + 10, width: 10, height: 10, fill: color}));
      svg.appendChild(el("text", {x: left + i * 80 + 14, y: rows.length * h + 19, class: "axis"}, name));
    });
    $("agentsChart").replaceChildren(svg);
  }

  function figures(f) { serviceLevel(f); table(f); agents(f); }

  // The heat map: a row per category, a cell per hour, darker for more.
  function heatmap(h) {
    const names = Object.keys(h.series || {}), buckets = h.buckets || [];
    if (!names.length || !buckets.length) { $("heat").textContent = "没有数据"; return; }
    const cw = Math.max(8, Math.min(30, Math.floor(900 / buckets.length))), ch = 20, left = 90, top = 4;
    const peak = Math.max(1, ...names.flatMap((n) => h.series[n]));
    const svg = el("svg", {role: "img", "aria-label": "heat map", width: left + cw * buckets.length + 10, height: top + ch * names.length + 22});
    names.forEach((name, r) => {
      const y = top + r * ch, total = h.series[name].reduce((a, b) => a + b, 0);
      svg.appendChild(el("text", {x: left - 6, y: y + 14, "text-anchor": "end", "data-testid": "heat-row", "data-name": name, "data-total": total}, QUEUE_NAMES[name] || name));
      h.series[name].forEach((n, c) => {
        const cell = el("rect", {x: left + c * cw, y, width: cw - 1, height: ch - 2, fill: `rgba(179,38,30,${n ? (0.08 + 0.92 * n / peak).toFixed(2) : 0.03})`,
          "data-testid": "heat-cell", "data-name": name, "data-bucket": buckets[c], "data-count": n});
        cell.appendChild(el("title", {}, `${QUEUE_NAMES[name] || name} ${buckets[c].slice(11, 16)}: ${n}`));
        svg.appendChild(cell);
      });
    });
    for (let c = 0; c < buckets.length; c += Math.max(1, Math.floor(buckets.length / 8))) {
      svg.appendChild(el("text", {x: left + c * cw, y: top + ch * names.length + 14, class: "axis"}, buckets[c].slice(11, 16)));
    }
    $("heat").replaceChildren(svg);
  }

  let socket = null, retry = 1000;
  function live() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(proto + "//" + location.host + "/v1/queues/live");
    socket.onopen = () => { retry = 1000; $("live").textContent = "实时"; $("live").classList.add("on"); };
    socket.onmessage = (e) => { const f = JSON.parse(e.data); if (f.type === "figures") { figures(f); $("live").dataset.at = f.at; } };
    socket.onclose = () => {
      $("live").textContent = "重连中"; $("live").classList.remove("on");
      if (!$("console").hidden) setTimeout(live, retry); retry = Math.min(retry * 2, 15000);
    };
  }

  async function refreshHeat() {
    try { heatmap(await get("/v1/analytics/heatmap?by=category&bucket=hour&since=24h")); } catch (e) { /* the next round tries again */ }
  }

  async function refresh() {
    try {
      const q = await get("/v1/queues"), a = await get("/v1/alerts?limit=20");
      const rows = q.queues || q || [];
      const max = Math.max(1, ...rows.map((r) => r.waiting || 0));
      $("queues").innerHTML = rows.map((r) => `<tr><td>${esc(r.queue || r.name)}</td><td>${esc(r.waiting)}</td><td>${esc(Math.round((r.oldest_wait_s ?? (r.oldest_wait_ms || 0) / 1000)))}s</td><td>${esc(r.estimated_wait_s ?? "—")}</td><td style="width:30%"><div class="bar" style="width:${100 * (r.waiting || 0) / max}%"></div></td></tr>`).join("");
      $("alerts").innerHTML = (a.alerts || []).map((x) => `<div class="alert">${esc(new Date(x.at).toLocaleTimeString())} · ${esc(x.kind || x.type)} · ${esc(x.queue || x.category || "")} ${x.count ? "×" + esc(x.count) : ""}</div>`).join("") || "无告警";
      const ag = await get("/v1/agents");
      const names = {available: "空闲", busy: "忙碌", no_desk: "未打开工作台", away: "离开", offline: "下线"};
      $("states").innerHTML = Object.entries(ag.by_state || {}).map(([k, n]) => `<span class="badge" style="margin-right:8px">${esc(names[k] || k)} ${esc(n)}</span>`).join("") || "—";
      $("agents").innerHTML = (ag.agents || []).slice(0, 50).map((x) => `<tr><td>${esc(x.name)}</td><td>${esc(x.status)}${x.desk ? "" : " · 无工作台"}</td><td>${esc(Object.values(x.load || {}).reduce((a, b) => a + b, 0))}</td></tr>`).join("");
      const lag = await get("/v1/ops/lag");
      $("lag").innerHTML = lag.available ? lag.groups.flatMap((g) => g.partitions.filter((p) => p.lag > 0 || g.partitions.length <= 12).map((p) => `<tr><td>${esc(g.group)}</td><td>${esc(p.topic)}</td><td>${esc(p.partition)}</td><td>${esc(p.lag)}</td></tr>`)).join("") : `<tr><td colspan="4">暂不可用（${esc(lag.reason || "")}）</td></tr>`;
      $("updated").textContent = "更新于 " + new Date().toLocaleTimeString();
    } catch (e) { if (e.status === 401 || e.status === 403) { $("console").hidden = true; $("login").hidden = false; if (socket) socket.close(); } }
  }

  function start() { $("console").hidden = false; refresh(); refreshHeat(); live(); }
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/v1/session", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({token: $("token").value.trim()})});
    if (!r.ok) { $("err").textContent = "令牌无效"; return; }
    $("login").hidden = true; start();
  });
  fetch("/v1/session", {credentials: "same-origin"}).then((r) => { if (r.ok) start(); else $("login").hidden = false; });
  setInterval(() => { if (!$("console").hidden) refresh(); }, 2000);
  setInterval(() => { if (!$("console").hidden) refreshHeat(); }, 30000);
})();
