// The web leaderboard's page logic (zoo-leaderboard --html; benchmark/site.py
// writes the data as window.LEADERBOARD in data.js). Every string from the
// data is set through textContent, never parsed as markup.
(function () {
  "use strict";
  const D = window.LEADERBOARD;
  const status = document.getElementById("status");
  if (!D) {
    status.textContent = "data.js is missing or broken: rerun zoo-leaderboard --html=DIR";
    return;
  }
  status.hidden = true;

  function el(tag, props, text) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "title") node.setAttribute(k, v);
      else node[k] = v;
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const state = { tab: 0, sortKey: null, sortDir: -1, source: "all", arch: "all", objective: "all", open: new Set() };
  const configs = D.configs;

  document.getElementById("meta").textContent =
    `${configs.length} configurations from ${D.leaderboard || "a leaderboard"}, written ${D.generated}. ` +
    `Cells: mean over seeds ± 95% t-interval (n seeds); * marks a difference from ${D.baseline} ` +
    `of the same arch that ${D.test} finds significant (p < ${D.alpha}).`;

  function options(id, key, values) {
    const select = document.getElementById(id);
    select.appendChild(el("option", { value: "all" }, "all"));
    values.forEach((v) => select.appendChild(el("option", { value: v }, v)));
    select.addEventListener("change", () => { state[key] = select.value; render(); });
  }
  const unique = (f) => Array.from(new Set(configs.map(f))).sort();
  options("filter-source", "source", unique((c) => c.source));
  options("filter-arch", "arch", unique((c) => c.arch));
  options("filter-objective", "objective", unique((c) => c.objective));

  const tabs = document.getElementById("tabs");
  D.tabs.forEach((tab, i) => {
    const button = el("button", { role: "tab", "data-tab": tab.name, "aria-selected": String(i === 0) }, tab.title);
    button.addEventListener("click", () => {
      state.tab = i; state.sortKey = null;
      tabs.querySelectorAll("button").forEach((b, j) => b.setAttribute("aria-selected", String(j === i)));
      render();
    });
    tabs.appendChild(button);
  });

  function defaultSort(tab) {
    const keys = tab.columns.map((c) => c.key);
    return keys.includes("linear_probe") ? "linear_probe" : keys[0];
  }

  function cellText(cell, column) {
    if (cell.low !== undefined) return `${cell.mean.toFixed(column.digits)} [${cell.low.toFixed(column.digits)}, ${cell.high.toFixed(column.digits)}]`;
    let text = cell.mean.toFixed(column.digits);
    if (cell.n > 1 && cell.half !== null) text += ` ± ${cell.half.toFixed(column.digits)} (${cell.n})`;
    return text;
  }

  function cellTitle(cell, column) {
    if (cell.low !== undefined) return `mean rank over ${cell.n} datasets; 95% bootstrap interval over datasets and seeds; tier ${cell.tier}`;
    const parts = [`seeds ${cell.seeds.map((s) => s || "?").join(", ")}: ${cell.values.join(", ")}${column.unit}`];
    if (cell.std !== null) parts.push(`std ${cell.std.toFixed(column.digits + 1)}`);
    if (cell.p !== undefined) {
      parts.push(cell.p === null ? `vs ${D.baseline}: untested (fewer than 2 seeds)`
        : `vs ${D.baseline}: Δ ${cell.delta.toFixed(column.digits)}, p = ${cell.p.toPrecision(3)}`);
    }
    return parts.join("; ");
  }

  function visible(config) {
    return ["source", "arch", "objective"].every((k) => state[k] === "all" || config[k] === state[k]);
  }

  function provenanceRow(config, span) {
    const p = config.provenance;
    const td = el("td", { colSpan: span });
    td.appendChild(el("div", {}, `pretraining data: ${config.pretrain || "unknown"}` + (p.citation ? ` · reported in ${p.citation}` : "")));
    if (p.modules.some((m) => m.handle || m.sha256)) {
      const list = el("ul", { class: "modules" });
      p.modules.forEach((m) => {
        const item = el("li", {}, `seed ${m.seed || "?"}: `);
        if (m.url) item.appendChild(el("a", { href: m.url, rel: "noopener" }, m.handle));
        else item.appendChild(el("code", {}, m.handle || "(no handle)"));
        item.appendChild(document.createTextNode(" sha256 "));
        item.appendChild(el("code", { class: "sha256" }, m.sha256 || "(none)"));
        const more = [m.code_version && `code ${m.code_version}`, m.tf_version && `TF ${m.tf_version}`,
          m.device && `on ${m.device}`, m.sandbox && `sandbox ${m.sandbox}`].filter(Boolean);
        if (more.length) item.appendChild(document.createTextNode(" · " + more.join(" · ")));
        list.appendChild(item);
      });
      td.appendChild(list);
    } else {
      td.appendChild(el("div", {}, "no module files: numbers as reported"));
    }
    const protocols = el("dl", { class: "protocols" });
    Object.entries(p.protocols).forEach(([evaluation, list]) => {
      protocols.appendChild(el("dt", {}, evaluation));
      list.forEach((text) => {
        const dd = el("dd");
        dd.appendChild(el("code", {}, text));
        protocols.appendChild(dd);
      });
    });
    td.appendChild(protocols);
    const tr = el("tr", { class: "provenance", "data-id": config.id });
    tr.appendChild(td);
    return tr;
  }

  function render() {
    const tab = D.tabs[state.tab];
    const key = state.sortKey || defaultSort(tab);
    const column = tab.columns.find((c) => c.key === key);
    const dir = state.sortKey ? state.sortDir : (column && column.lower_is_better ? 1 : -1);
    state.sortKey = key; state.sortDir = dir;  // a click on this header reverses it
    const table = document.getElementById("board");
    const thead = table.tHead, tbody = table.tBodies[0];
    thead.textContent = ""; tbody.textContent = "";

    const head = el("tr");
    const fixed = [["objective", "objective"], ["arch", "arch"], ["source", "source"], ["seeds", "seeds"]];
    [["rank", "#"], ...fixed].forEach(([k, label]) => {
      const th = el("th", { "data-key": k, class: k === "rank" || k === "seeds" ? "num" : "" });
      if (k === "rank") th.textContent = label;
      else {
        const b = el("button", {}, label);
        b.addEventListener("click", () => sortBy(k));
        th.appendChild(b);
      }
      if (k === key) th.setAttribute("aria-sort", dir < 0 ? "descending" : "ascending");
      head.appendChild(th);
    });
    tab.columns.forEach((c) => {
      const th = el("th", { "data-key": c.key, class: "num", title: c.title || c.label });
      const b = el("button", {}, c.label);
      b.addEventListener("click", () => sortBy(c.key));
      th.appendChild(b);
      if (c.key === key) th.setAttribute("aria-sort", dir < 0 ? "descending" : "ascending");
      head.appendChild(th);
    });
    thead.appendChild(head);

    const cells = tab.cells;
    const seedsOf = (c) => Math.max(0, ...Object.values(cells[c.id] || {}).map((x) => x.n));
    const value = (c) => {
      if (["objective", "arch", "source"].includes(key)) return c[key];
      if (key === "seeds") return seedsOf(c);
      const cell = (cells[c.id] || {})[key];
      return cell ? cell.mean : null;
    };
    const shown = configs.filter((c) => cells[c.id] && visible(c));
    // Rows of different protocol fingerprints are never ranked together:
    // each group is sorted on its own, under a line saying what differs.
    const groupOf = ((tab.groups || {})[key]) || null;
    const reasons = ((tab.reasons || {})[key]) || {};
    const groupKey = (c) => (groupOf ? groupOf[c.id] || "~" : "");
    shown.sort((a, b) => {
      const ga = groupKey(a), gb = groupKey(b);
      if (ga !== gb) return ga < gb ? -1 : 1;
      const x = value(a), y = value(b);
      if (x === null && y === null) return a.objective.localeCompare(b.objective);
      if (x === null) return 1;
      if (y === null) return -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return a.objective.localeCompare(b.objective) || a.arch.localeCompare(b.arch);
    });
    const span = 5 + tab.columns.length;
    let group = null, start = 0;
    shown.forEach((c, i) => {
      if (groupOf && groupKey(c) !== group) {
        group = groupKey(c); start = i;
        const label = group === "~" ? "no rows of this column" : `protocol ${group}: ${reasons[group] || ""}`;
        const sep = el("tr", { class: "group", "data-group": group });
        sep.appendChild(el("td", { colSpan: span, class: "group" }, label));
        tbody.appendChild(sep);
      }
      const tr = el("tr", { class: "config", "data-id": c.id, "data-source": c.source, "data-arch": c.arch, "data-objective": c.objective, "data-group": groupKey(c), title: "click for provenance" });
      tr.appendChild(el("td", { class: "num rank" }, i - start + 1));
      tr.appendChild(el("td", { class: "objective" }, c.objective));
      tr.appendChild(el("td", { class: "arch" }, c.arch));
      tr.appendChild(el("td", { class: "source" }, c.source));
      tr.appendChild(el("td", { class: "num seeds" }, seedsOf(c)));
      tab.columns.forEach((col) => {
        const cell = (cells[c.id] || {})[col.key];
        if (!cell) { tr.appendChild(el("td", { class: "num empty", "data-key": col.key }, "–")); return; }
        const td = el("td", { class: "num", "data-key": col.key, "data-value": cell.mean, title: cellTitle(cell, col) }, cellText(cell, col));
        if (cell.significant) td.appendChild(el("span", { class: "sig" }, "*"));
        tr.appendChild(td);
      });
      tr.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        if (state.open.has(c.id)) state.open.delete(c.id); else state.open.add(c.id);
        render();
      });
      tbody.appendChild(tr);
      if (state.open.has(c.id)) tbody.appendChild(provenanceRow(c, span));
    });
    const total = configs.filter((c) => cells[c.id]).length;
    document.getElementById("count").textContent = `${shown.length} of ${total} configurations`;
    const note = groupOf ? " Ranks restart in each protocol group: rows measured differently are not ranked together." : "";
    document.getElementById("legend").textContent = (tab.name === "ranks"
      ? "Mean rank over the datasets of the transfer families every configuration of its protocol group has, with a 95% bootstrap interval (datasets and seeds resampled); configurations whose intervals overlap the tier's best share a tier and are tied."
      : tab.name === "models"
      ? "Model metadata: parameters (millions), multiply-accumulates per image at the scored size, inference images/s on the row's device, feature dimension, input size and size on disk; mean over the seeds' modules."
      : tab.name === "summary"
      ? "Summary, in percent except R²: source-task top-1; the mean over transfer datasets of linear-probe, kNN and fine-tuning accuracy; class separation R² on the pretraining data where measured there, else on the first dataset that has one; Chexpert mean AUC. Click a header to sort, a row for its provenance."
      : "One column per dataset (hover a header for dataset, split and metric; accuracies and AUCs in percent). Click a header to sort, a row for its provenance.") + note;
  }

  function sortBy(key) {
    if (state.sortKey === key) state.sortDir = -state.sortDir;
    else { state.sortKey = key; state.sortDir = ["objective", "arch", "source"].includes(key) ? 1 : -1; }
    render();
  }

  // Figures.
  const figure = document.getElementById("figure");
  if (D.cost_figure) {
    figure.appendChild(el("img", { id: "figure-cost", src: D.cost_figure, alt: "linear transfer accuracy against multiply-accumulates per image" }));
  }
  if (D.figure) {
    figure.appendChild(el("img", { id: "figure-transfer", src: D.figure, alt: "linear transfer accuracy against class separation R²" }));
    Object.entries(D.rho || {}).forEach(([kind, r]) => {
      figure.appendChild(el("p", { class: "rho" },
        `${kind}: Spearman ρ(R², linear transfer) = ${r.rho.toFixed(3)}, 95% bootstrap interval [${r.low.toFixed(3)}, ${r.high.toFixed(3)}] over ${r.n} modules`));
    });
  } else {
    figure.appendChild(el("p", { class: "empty" }, "No module has both class separation R² and linear-probe rows."));
  }

  const STOPS = [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]];
  function colour(v) {
    const t = Math.min(1, Math.max(0, v)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(t)), f = t - i;
    const c = STOPS[i].map((x, k) => Math.round(x + f * (STOPS[i + 1][k] - x)));
    return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  }
  const heatmaps = document.getElementById("heatmaps");
  if (!D.heatmaps.length) {
    heatmaps.appendChild(el("p", { class: "empty" }, "No CKA results: run zoo-analyze and pass its --out folder with --html_analyses."));
  }
  D.heatmaps.forEach((h) => {
    const box = el("figure", { class: "heatmap", "data-a": h.a, "data-b": h.b });
    box.appendChild(el("figcaption", {}, `${h.folder}: linear CKA, rows ${h.a} (${h.layers_a.length} layers, first at the bottom), columns ${h.b}`));
    const grid = el("div", { class: "grid" });
    grid.style.gridTemplateColumns = `repeat(${h.layers_b.length}, 14px)`;
    for (let i = h.layers_a.length - 1; i >= 0; i--) {
      h.matrix[i].forEach((v, j) => {
        const cell = el("div", { title: `${h.layers_a[i]} × ${h.layers_b[j]}: ${v === null ? "n/a" : v.toFixed(3)}` });
        cell.style.background = v === null ? "#fff" : colour(v);
        grid.appendChild(cell);
      });
    }
    box.appendChild(grid);
    heatmaps.appendChild(box);
  });

  render();
})();
