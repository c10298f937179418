// xlb status page: polls /api/status every second and renders it. One
// table renderer (sorting, filtering, row colours) serves every kind of
// document: "edge" from xlb daemon, "proxy" from xlb proxy, "dns" from
// xlb dns. Read-only: the
// only request this script makes is GET /api/status.
"use strict";
(function () {
  const POLL_MS = 1000;
  const views = new Map(); // table id -> {section, thead, tbody, countEl, noteEl, sortKey, sortDir}
  let lastOK = 0;

  // ---- formatting --------------------------------------------------------
  function si(n, unit) {
    if (n === null || n === undefined || isNaN(n)) return "-";
    const a = Math.abs(n);
    const steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (const [f, p] of steps) {
      if (a >= f) return (n / f).toFixed(a / f >= 100 ? 0 : 1) + " " + p + unit;
    }
    return (a >= 100 || a === 0 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(1)) + (unit ? " " + unit : "");
  }
  function rate(n) { return si(n, "/s"); }
  function bits(n) { return si(n, "b/s"); }
  function pct(x) { return x === null || x === undefined ? "-" : (x * 100).toFixed(1) + " %"; }
  function ms(x) {
    if (x === null || x === undefined) return "-";
    return (x < 10 ? x.toFixed(2) : x.toFixed(0)) + " ms";
  }
  function ago(now, t) {
    if (!t) return "-";
    const s = Math.round((now - Date.parse(t)) / 1000);
    if (isNaN(s)) return "-";
    if (s < 0) return "in " + dur(-s);
    return dur(s) + " ago";
  }
  function dur(s) {
    if (s < 120) return s + "s";
    if (s < 7200) return Math.floor(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h";
    return Math.floor(s / 86400) + "d";
  }
  function yes(b) { return b ? "yes" : "no"; }

  // ---- the table renderer ------------------------------------------------
  // def: {id, title, note, columns: [{key, label, num, text(row), value(row), cls}],
  //       rows, rowKey(row), rowState(row), empty}
  function view(def) {
    let v = views.get(def.id);
    if (!v) {
      const section = document.createElement("section");
      section.className = "view";
      section.id = "view-" + def.id;
      const h = document.createElement("h2");
      h.textContent = def.title;
      const countEl = document.createElement("span");
      countEl.className = "count";
      h.appendChild(countEl);
      const noteEl = document.createElement("p");
      noteEl.className = "note";
      const table = document.createElement("table");
      table.id = "table-" + def.id;
      const thead = table.createTHead();
      const tbody = table.createTBody();
      section.append(h, noteEl, table);
      document.getElementById("tables").appendChild(section);
      v = {section, thead, tbody, countEl, noteEl, sortKey: def.sortKey || null, sortDir: 1, def};
      views.set(def.id, v);
      const tr = thead.insertRow();
      for (const c of def.columns) {
        const th = document.createElement("th");
        th.textContent = c.label;
        th.dataset.key = c.key;
        if (c.num) th.className = "num";
        th.addEventListener("click", () => {
          if (v.sortKey === c.key) v.sortDir = -v.sortDir; else { v.sortKey = c.key; v.sortDir = c.num ? -1 : 1; }
          draw(v);
        });
        tr.appendChild(th);
      }
    }
    v.def = def;
    v.section.hidden = !!def.hidden;
    v.seen = true;
    draw(v);
  }

  function cellText(c, row) { return c.text ? c.text(row) : String(row[c.key] ?? "-"); }
  function cellValue(c, row) {
    const x = c.value ? c.value(row) : (c.num ? row[c.key] : cellText(c, row));
    if (x === null || x === undefined || (typeof x === "number" && isNaN(x))) return c.num ? -Infinity : "";
    return x;
  }

  function draw(v) {
    const def = v.def;
    const filter = document.getElementById("filter").value.trim().toLowerCase();
    let rows = def.rows.map((r) => ({r, texts: def.columns.map((c) => cellText(c, r))}));
    const total = rows.length;
    if (filter) {
      const terms = filter.split(/\s+/);
      rows = rows.filter((x) => {
        const hay = (x.texts.join(" ") + " " + (def.rowState ? def.rowState(x.r) : "")).toLowerCase();
        return terms.every((t) => hay.includes(t));
      });
    }
    const col = def.columns.find((c) => c.key === v.sortKey);
    if (col) {
      rows.sort((a, b) => {
        const x = cellValue(col, a.r), y = cellValue(col, b.r);
        if (typeof x === "number" && typeof y === "number") return (x - y) * v.sortDir;
        return String(x).localeCompare(String(y), undefined, {numeric: true}) * v.sortDir;
      });
    }
    for (const th of v.thead.rows[0].cells) {
      if (th.dataset.key === v.sortKey) th.setAttribute("aria-sort", v.sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    v.countEl.textContent = filter ? rows.length + " of " + total : String(total);
    v.noteEl.textContent = def.note || "";
    v.noteEl.hidden = !def.note;
    const body = document.createDocumentFragment();
    for (const x of rows) {
      const tr = document.createElement("tr");
      const state = def.rowState ? def.rowState(x.r) : "";
      if (state) { tr.className = "st-" + state; tr.dataset.state = state; }
      if (def.rowKey) tr.dataset.key = def.rowKey(x.r);
      def.columns.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = x.texts[i];
        if (c.num) td.className = "num";
        if (c.cls) td.className = c.cls;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = def.columns.length;
      td.textContent = total ? "no row matches the filter" : (def.empty || "none");
      tr.appendChild(td);
      body.appendChild(tr);
    }
    v.tbody.replaceChildren(body);
  }

  function redrawAll() { for (const v of views.values()) draw(v); }

  function card(name, counts, state, key) {
    const d = document.createElement("div");
    d.className = "card st-" + state;
    d.dataset.state = state;
    if (key) d.dataset.key = key;
    const n = document.createElement("div");
    n.className = "name";
    n.textContent = name;
    const c = document.createElement("div");
    c.className = "counts";
    c.textContent = counts;
    d.append(n, c);
    return d;
  }

  function worst(up, degraded, down) {
    // A group with nothing usable is down; one with anything not up is
    // degraded (orange); otherwise up.
    if (up === 0) return "down";
    if (degraded > 0 || down > 0) return "drain";
    return "up";
  }

  function parts(list) { return list.filter((p) => p[1] > 0 || p[2]).map((p) => p[1] + " " + p[0]).join(" · ") || "none"; }

  // ---- edge (xlb daemon) -------------------------------------------------
  const backendState = {active: "up", draining: "drain", down: "down"};

  function renderEdge(s) {
    const now = Date.parse(s.time) || Date.now();
    const d = s.daemon || {};
    document.getElementById("title").textContent = "xlb daemon";
    document.title = "xlb daemon status";
    const up = d.startTime ? "up " + dur(Math.max(0, Math.round((now - Date.parse(d.startTime)) / 1000))) : "";
    document.getElementById("meta").textContent = ["version " + (d.version || "?"), up,
      d.adopted ? "data path adopted" : "data path loaded fresh", "reconciled " + ago(now, d.lastReconcile)].filter(Boolean).join(" · ");
    const problems = [];
    if (d.lastReconcileError) problems.push("Reconcile failed: " + d.lastReconcileError);
    const sum = s.summary || {};
    if (sum.interfacesDetached) problems.push(sum.interfacesDetached + " interface(s) without the XDP program");
    if (sum.nextHopsUnresolved) problems.push(sum.nextHopsUnresolved + " L7 host(s) with an unresolved next hop: their packets are passed to the kernel");
    if (sum.vipsWithoutBackend) problems.push(sum.vipsWithoutBackend + " VIP(s) without an active backend: their traffic is dropped");
    if (sum.vipsFailingOpen) problems.push(sum.vipsFailingOpen + " VIP(s) failing open: too few backends pass their health checks, new flows go to every backend not drained");
    setProblems(problems);

    const cards = document.getElementById("summary");
    const list = [card("Edge: " + sum.vips + " VIPs, " + sum.backends + " backends",
      parts([["active", sum.active, true], ["draining", sum.draining], ["down", sum.down]]),
      sum.backends ? worst(sum.active, sum.draining, sum.down) : "unknown", "summary")];
    for (const v of s.vips) {
      list.push(card(v.key, parts([["active", v.active, true], ["draining", v.draining], ["down", v.down]]) + " · " + rate(v.pps) + " pkts",
        worst(v.active, v.draining, v.down), "vip:" + v.key));
    }
    const ct = s.conntrack || {};
    const used = ct.capacity ? (ct.exact ? "" : "≈ ") + ct.entries + " of " + ct.capacity + " entries · " : "";
    list.push(card("Connection table", used + rate(ct.hitsPerSecond) + " hits · " + rate(ct.missesPerSecond) + " misses", "unknown", "conntrack"));
    cards.replaceChildren(...list);

    const backends = [];
    for (const v of s.vips) for (const b of v.backends) backends.push(Object.assign({vip: v.key}, b));

    view({
      id: "vips", title: "VIPs", sortKey: "key", rows: s.vips, empty: "no VIPs: add one with `xlb vip add`",
      rowKey: (r) => "vip:" + r.key, rowState: (r) => worst(r.active, r.draining, r.down),
      columns: [
        {key: "key", label: "VIP"},
        {key: "mode", label: "Mode"},
        {key: "backends", label: "Backends", text: (r) => r.active + " active / " + r.backends.length + (r.failingOpen ? " · FAIL-OPEN" : ""), value: (r) => r.active},
        {key: "pps", label: "Packets/s", num: true, text: (r) => rate(r.pps)},
        {key: "bps", label: "Bits/s", num: true, text: (r) => bits(r.bps)},
        {key: "newFlowsPerSecond", label: "New flows/s", num: true, text: (r) => rate(r.newFlowsPerSecond)},
        {key: "tableSize", label: "Table size", num: true},
      ],
    });
    view({
      id: "backends", title: "Backends", sortKey: "vip", rows: backends, empty: "no backends",
      rowKey: (r) => "backend:" + r.vip + "/" + r.addr, rowState: (r) => backendState[r.state] || "unknown",
      columns: [
        {key: "vip", label: "VIP"},
        {key: "addr", label: "Backend"},
        {key: "state", label: "State"},
        {key: "healthy", label: "Health", text: (r) => (r.healthy ? "up" : "down")},
        {key: "drain", label: "Drain", text: (r) => yes(r.drain)},
        {key: "weight", label: "Weight", num: true},
        {key: "tableShare", label: "Table share", num: true, text: (r) => pct(r.tableShare)},
        {key: "pps", label: "Packets/s", num: true, text: (r) => rate(r.pps)},
        {key: "bps", label: "Bits/s", num: true, text: (r) => bits(r.bps)},
        {key: "lastCheck", label: "Last check", text: (r) => ago(now, r.lastCheck), value: (r) => r.lastCheck || ""},
        {key: "lastTransition", label: "Last change", text: (r) => ago(now, r.lastTransition), value: (r) => r.lastTransition || ""},
        {key: "lastError", label: "Last error", cls: "err", text: (r) => r.lastError || "-"},
      ],
    });
    view({
      id: "interfaces", title: "Interfaces", sortKey: "name", rows: s.interfaces, empty: "no interfaces",
      rowKey: (r) => "iface:" + r.name,
      rowState: (r) => (!r.attached ? "down" : r.mode === "native" ? "up" : r.mode === "generic" ? "eject" : "unknown"),
      columns: [
        {key: "name", label: "Interface"},
        {key: "mode", label: "XDP mode", text: (r) => (r.attached ? r.mode || "-" : "not attached") + (r.mode === "generic" ? " (slow)" : "")},
        {key: "configuredMode", label: "Configured"},
        {key: "mtu", label: "MTU", num: true, text: (r) => (r.mtu ? String(r.mtu) : "-")},
        {key: "error", label: "Error", cls: "err", text: (r) => r.error || "-"},
      ],
    });
    const nh = s.nextHops || {};
    view({
      id: "nexthops", title: "Next hops", sortKey: "backend", rows: nh.hosts || [],
      note: nh.mode === "static" ? "Static next hop " + nh.mac + " for every frame (dataplane.next_hop_mac)." :
        nh.mode === "fib" ? "Per frame from the kernel's FIB and neighbour table." : "",
      empty: nh.mode === "static" ? "static next hop: no per-host resolution" : "none",
      rowKey: (r) => "nexthop:" + r.backend, rowState: (r) => (r.resolved ? "up" : "down"),
      columns: [
        {key: "backend", label: "L7 host"},
        {key: "iface", label: "Interface", text: (r) => r.iface || "-"},
        {key: "gateway", label: "Via", text: (r) => r.gateway || (r.iface ? "on-link" : "-")},
        {key: "mac", label: "MAC", text: (r) => r.mac || "-"},
        {key: "state", label: "Neighbour"},
        {key: "resolved", label: "Resolved", text: (r) => yes(r.resolved)},
      ],
    });
    const bgp = s.bgp;
    if (bgp) {
      for (const p of bgp.peers || []) if (!p.up) problems.push("BGP session to " + p.addr + " is " + p.state + (p.lastError ? ": " + p.lastError : ""));
      if (bgp.held) problems.push("Not announcing over BGP: " + bgp.held);
      if (bgp.lastError) problems.push("BGP: " + bgp.lastError);
      setProblems(problems);
    }
    view({
      id: "bgp", title: "BGP peers", sortKey: "addr", rows: (bgp && bgp.peers) || [], hidden: !bgp,
      note: bgp ? "AS " + bgp.asn + ", router id " + bgp.routerId + "; announcing " +
        ((bgp.announced || []).join(", ") || "nothing") + "." : "",
      empty: "no peers configured",
      rowKey: (r) => "bgp:" + r.addr, rowState: (r) => (r.up ? "up" : "down"),
      columns: [
        {key: "addr", label: "Peer"},
        {key: "asn", label: "AS", num: true},
        {key: "state", label: "State"},
        {key: "since", label: "Since", text: (r) => ago(now, r.since), value: (r) => r.since || ""},
        {key: "flaps", label: "Flaps", num: true},
        {key: "lastError", label: "Last error", cls: "err", text: (r) => r.lastError || "-"},
      ],
    });
    view({
      id: "reasons", title: "Packets by reason", sortKey: "reason", rows: s.reasons || [],
      note: "Drops, passes to the kernel and verdicts of the XDP program (xlb_l4_drops_total); reasons never seen are left out.",
      rowKey: (r) => "reason:" + r.reason,
      columns: [
        {key: "reason", label: "Reason"},
        {key: "perSecond", label: "Packets/s", num: true, text: (r) => rate(r.perSecond)},
        {key: "packets", label: "Total", num: true, text: (r) => si(r.packets, "")},
      ],
    });
  }

  // ---- proxy (xlb proxy) -------------------------------------------------
  const serverState = {up: "up", "slow-start": "slow", draining: "drain", ejected: "eject", down: "down", "out-of-role": "unknown"};

  // A pool is red when it has no server to give (split brain, no primary,
  // all down), orange when some are out or it runs on its fallback.
  function poolState(p) {
    if (p.available === 0 || p.splitBrain) return "down";
    if (p.problem) return "drain";
    // A role pool uses only the servers in its role: the others being out
    // is its normal state.
    if (!p.role && p.available < p.servers.length) return "drain";
    return "up";
  }
  // What the PostgreSQL check last learnt about a server.
  function dbText(r) {
    const d = r.db;
    if (!d) return "-";
    if (d.error) return "check failed: " + d.error;
    return d.inRecovery ? "standby, lag " + (d.lagSeconds < 10 ? d.lagSeconds.toFixed(2) : d.lagSeconds.toFixed(0)) + " s" : "primary";
  }

  function renderProxy(s) {
    const now = Date.parse(s.time) || Date.now();
    document.getElementById("title").textContent = "xlb proxy";
    document.title = "xlb proxy status";
    document.getElementById("meta").textContent = [s.version ? "version " + s.version : "",
      s.ready ? "ready" : "NOT READY: " + (s.readyReason || "?")].filter(Boolean).join(" · ");
    const sum = s.summary || {};
    const problems = [];
    if (!s.ready) problems.push("Not ready (/ready answers 503): " + (s.readyReason || "?"));
    for (const p of s.pools) {
      const tcp = (p.listeners || []).length > 0;
      if (p.problem) problems.push("Pool " + p.name + (p.role ? " (role " + p.role + ")" : "") + ": " + p.problem);
      else if (p.available === 0) problems.push("Pool " + p.name + " has no available server: " +
        (tcp ? "its TCP listeners refuse new connections" : "its routes answer 503"));
    }
    setProblems(problems);

    const cards = document.getElementById("summary");
    const list = [card("Proxy: " + sum.pools + " pools, " + sum.servers + " servers",
      parts([["up", sum.up, true], ["slow start", sum.slowStart], ["draining", sum.draining], ["ejected", sum.ejected], ["down", sum.down], ["out of role", sum.outOfRole]]),
      !s.ready ? "down" : sum.servers ? worst(sum.up + sum.slowStart, sum.draining + sum.ejected, sum.down) : "unknown", "summary")];
    for (const p of s.pools) {
      const traffic = (p.listeners || []).length > 0 ? si(p.activeConnections, "") + " conns · " + rate(p.connectionsPerSecond) + " new"
        : rate(p.requestsPerSecond) + " req";
      list.push(card("Pool " + p.name + (p.role ? " (" + p.role + ")" : ""),
        p.available + " of " + p.servers.length + " available · " + traffic + (p.problem ? " · " + p.problem : ""),
        poolState(p), "pool:" + p.name));
    }
    cards.replaceChildren(...list);

    const byPool = new Map(s.pools.map((p) => [p.name, p]));
    const servers = [];
    for (const p of s.pools) for (const sv of p.servers) servers.push(Object.assign({pool: p.name}, sv));

    view({
      id: "routes", title: "Routes", rows: s.routes, empty: "no routes",
      rowKey: (r) => "route:" + r.name,
      rowState: (r) => { const p = byPool.get(r.pool); return !p ? "unknown" : p.available === 0 ? "down" : "up"; },
      columns: [
        {key: "name", label: "Route"},
        {key: "pool", label: "Pool"},
        {key: "requestsPerSecond", label: "Req/s", num: true, text: (r) => rate(r.requestsPerSecond)},
        {key: "errorsPerSecond", label: "5xx/s", num: true, text: (r) => rate(r.errorsPerSecond)},
        {key: "shedPerSecond", label: "Shed/s", num: true, text: (r) => rate(r.shedPerSecond)},
        {key: "shed", label: "Shed", num: true, text: (r) => si(r.shed, "")},
      ],
    });
    view({
      id: "pools", title: "Pools", sortKey: "name", rows: s.pools, empty: "no pools",
      rowKey: (r) => "pool:" + r.name,
      rowState: poolState,
      columns: [
        {key: "name", label: "Pool"},
        {key: "policy", label: "Policy"},
        {key: "role", label: "Role", text: (r) => r.role || "-"},
        {key: "problem", label: "Problem", text: (r) => r.problem || "-"},
        {key: "available", label: "Available", num: true, text: (r) => r.available + " / " + r.servers.length},
        {key: "activeConnections", label: "Conns", num: true, text: (r) => ((r.listeners || []).length ? si(r.activeConnections, "") : "-")},
        {key: "connectionsPerSecond", label: "Conns/s", num: true, text: (r) => ((r.listeners || []).length ? rate(r.connectionsPerSecond) : "-")},
        {key: "refusedPerSecond", label: "Refused/s", num: true, text: (r) => ((r.listeners || []).length ? rate(r.refusedPerSecond) : "-")},
        {key: "inFlight", label: "In flight", num: true},
        {key: "requestsPerSecond", label: "Req/s", num: true, text: (r) => rate(r.requestsPerSecond)},
        {key: "errorsPerSecond", label: "5xx/s", num: true, text: (r) => rate(r.errorsPerSecond)},
        {key: "retriesPerSecond", label: "Retries/s", num: true, text: (r) => rate(r.retriesPerSecond)},
        {key: "retries", label: "Retries", num: true, text: (r) => si(r.retries, "")},
        {key: "sticky", label: "Sticky", text: (r) => (r.sticky ? rate(r.stickyHitsPerSecond) + " hits, " + rate(r.stickyNewPerSecond) + " new" : "off"),
          value: (r) => (r.sticky ? r.stickyHitsPerSecond : -1)},
        {key: "routes", label: "Routes", text: (r) => (r.routes || []).concat((r.listeners || []).map((l) => l + " (tcp)")).join(", ") || "-"},
      ],
    });
    view({
      id: "servers", title: "Servers", sortKey: "pool", rows: servers, empty: "no servers",
      rowKey: (r) => "server:" + r.pool + "/" + r.name, rowState: (r) => serverState[r.state] || "unknown",
      columns: [
        {key: "pool", label: "Pool"},
        {key: "name", label: "Server"},
        {key: "addr", label: "Address"},
        {key: "state", label: "State", text: (r) => r.state + (r.state === "draining" && r.empty ? " (empty)" : "")},
        {key: "weight", label: "Weight", num: true, text: (r) => r.weight + (r.effectiveWeight < 1 ? " (" + pct(r.effectiveWeight) + ")" : "")},
        {key: "db", label: "Database", text: dbText, value: (r) => dbText(r)},
        {key: "inFlight", label: "In flight", num: true},
        {key: "activeConnections", label: "Conns", num: true, text: (r) => si(r.activeConnections, "")},
        {key: "requestsPerSecond", label: "Req/s", num: true, text: (r) => rate(r.requestsPerSecond)},
        {key: "errorsPerSecond", label: "5xx/s", num: true, text: (r) => rate(r.errorsPerSecond)},
        {key: "p50Ms", label: "p50", num: true, text: (r) => ms(r.p50Ms)},
        {key: "p99Ms", label: "p99", num: true, text: (r) => ms(r.p99Ms)},
        {key: "ejections", label: "Ejections", num: true},
        {key: "drainDeadline", label: "Drain deadline", text: (r) => (r.drainDeadline ? ago(now, r.drainDeadline) : "-")},
        {key: "stickySeen", label: "Sticky client seen", text: (r) => ago(now, r.stickySeen)},
      ],
    });
  }

  // ---- dns (xlb dns) -----------------------------------------------------
  function siteState(r) { return !r.checked ? "unknown" : r.up ? "up" : "down"; }

  function renderDNS(s) {
    const now = Date.parse(s.time) || Date.now();
    document.getElementById("title").textContent = "xlb dns";
    document.title = "xlb dns status";
    document.getElementById("meta").textContent = [s.version ? "version " + s.version : "", "listen " + s.listen,
      s.config || ""].filter(Boolean).join(" · ");
    const sum = s.summary || {};
    const problems = [];
    for (const n of s.names) {
      if (n.up === 0) problems.push("No site of " + n.name + " is up: it answers with " + (n.allDown === "all" ? "every site's VIPs" : "the sorry site " + n.allDown));
    }
    for (const x of s.sites) if (x.checked && !x.up) problems.push("Site " + x.name + " is down: " + (x.reason || "?"));
    setProblems(problems);

    const cards = document.getElementById("summary");
    const list = [card("DNS: " + sum.sites + " sites, " + sum.names + " GSLB names",
      parts([["up", sum.up, true], ["down", sum.down - sum.unchecked], ["not checked yet", sum.unchecked]]),
      sum.sites ? worst(sum.up, 0, sum.down) : "unknown", "summary")];
    for (const n of s.names) {
      list.push(card(n.name, n.policy + " · " + n.up + " of " + n.sites.length + " sites up",
        n.up === 0 ? "down" : n.up < n.sites.length ? "drain" : "up", "name:" + n.name));
    }
    cards.replaceChildren(...list);

    view({
      id: "sites", title: "Sites", rows: s.sites, empty: "no sites",
      rowKey: (r) => "site:" + r.name, rowState: siteState,
      columns: [
        {key: "name", label: "Site"},
        {key: "up", label: "State", text: (r) => (!r.checked ? "not checked yet" : r.up ? "up" : "down"), value: (r) => (r.checked ? (r.up ? 1 : 0) : -1)},
        {key: "vips", label: "VIPs", text: (r) => (r.vips || []).join(", ") || "-"},
        {key: "check", label: "Health from", text: (r) => r.check + (r.targets && r.targets.length ? ": " + r.targets.join(", ") : "")},
        {key: "reason", label: "Why", text: (r) => r.reason || "-"},
        {key: "lastRound", label: "Latest round", text: (r) => (r.lastRound && r.lastRound !== r.reason ? r.lastRound : "-")},
        {key: "since", label: "Since", text: (r) => ago(now, r.since)},
        {key: "transitions", label: "Changes", num: true},
      ],
    });
    view({
      id: "names", title: "GSLB names", sortKey: "name", rows: s.names, empty: "no GSLB names",
      rowKey: (r) => "name:" + r.name,
      rowState: (r) => (r.up === 0 ? "down" : r.up < r.sites.length ? "drain" : "up"),
      columns: [
        {key: "name", label: "Name"},
        {key: "policy", label: "Policy"},
        {key: "sites", label: "Sites", text: (r) => r.sites.join(", ")},
        {key: "up", label: "Up", num: true, text: (r) => r.up + " / " + r.sites.length},
        {key: "allDown", label: "All down", text: (r) => (r.allDown === "all" ? "every site" : r.allDown)},
        {key: "ttl", label: "TTL", num: true, text: (r) => r.ttl + " s"},
      ],
    });
  }

  // ---- polling -----------------------------------------------------------
  function setProblems(list, stale) {
    const b = document.getElementById("banner");
    b.hidden = list.length === 0;
    b.textContent = list.join(" — ");
    document.body.classList.toggle("stale", !!stale);
  }

  function render(s) {
    if (s.kind === "edge") renderEdge(s);
    else if (s.kind === "proxy") renderProxy(s);
    else if (s.kind === "dns") renderDNS(s);
    else throw new Error("unknown status kind " + JSON.stringify(s.kind));
    const t = new Date(s.time);
    document.getElementById("updated").textContent = "updated " + t.toLocaleTimeString();
    document.body.dataset.kind = s.kind;
    document.body.dataset.updates = String((Number(document.body.dataset.updates) || 0) + 1);
  }

  async function poll() {
    try {
      const res = await fetch("/api/status", {cache: "no-store", headers: {Accept: "application/json"}});
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      render(body);
      lastOK = Date.now();
    } catch (e) {
      const since = lastOK ? " (showing data from " + dur(Math.round((Date.now() - lastOK) / 1000)) + " ago)" : "";
      setProblems(["Cannot read /api/status: " + e.message + since], true);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("filter").addEventListener("input", redrawAll);
    poll();
  });
})();
