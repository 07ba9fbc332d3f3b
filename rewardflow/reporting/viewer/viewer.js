/* rewardflow viewer: headline, a virtualised table of every sample, and a sample's detail.
 *
 * The data sits in JSON script tags (type application/json) written by rewardflow/viewer.
 * Model text is untrusted, so it only ever reaches the page through textContent (the el()
 * helper below); nothing here assigns innerHTML.
 *
 * The headline renders as soon as this script runs, before the browser has parsed the (maybe
 * large) sample data that follows it; start() then parses the samples and draws the table.
 */
"use strict";
var rewardflowViewer = (function () {
  const meta = JSON.parse(document.getElementById("rf-meta").textContent);
  const COMPARE = meta.mode === "compare";
  // The reward a comparison is about (rewardflow compare --reward), else each run's primary.
  const CMP_REWARD = COMPARE && meta.comparison ? meta.comparison.reward : null;
  const ROW_H = 28; // keep in step with --row-h in viewer.css
  const OVERSCAN = 12;
  const STATUSES = ["scored", "score_error", "generation_failed", "not_attempted"];
  const state = {
    rows: [], // every row: a sample (one run) or a shared prompt (compare)
    view: [], // the rows that pass the filters, in display order
    columns: [],
    sortKey: null,
    sortDir: 1,
    current: null,
    byKey: null,
  };

  // --- small helpers ------------------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children || []) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
  const num = (x) =>
    x === null || x === undefined ? "–" : String(Math.round(x * 1000) / 1000);
  const int = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const text = (value) =>
    value === undefined || value === null
      ? ""
      : typeof value === "string"
        ? value
        : JSON.stringify(value);
  const readJSON = (id) => JSON.parse(document.getElementById(id).textContent);

  function chip(label, value, alert) {
    return el("span", { class: "chip" + (alert ? " alert" : "") }, [label + " ", el("b", { text: value })]);
  }

  // --- headline -----------------------------------------------------------------------------

  function scoreBlock(run, label, name) {
    const reward = (run.summary.rewards || {})[name] || {};
    const ci = reward.ci95
      ? `95% CI ${pct(reward.ci95[0])} – ${pct(reward.ci95[1])} (${reward.ci_method}) · ${int(reward.prompts)} prompts`
      : "no scored samples";
    return el("div", { class: "score-block", "data-run": run.name }, [
      el("div", { class: "label", text: label }),
      el("div", { class: "value primary-score", text: pct(reward.mean) }),
      el("div", { class: "ci", text: ci }),
    ]);
  }

  function runChips(run, prefix) {
    const s = run.summary;
    const counts = s.counts || {};
    const usage = s.usage || {};
    const truncated = counts.truncated !== undefined ? counts.truncated : run.truncated;
    const unparsable = (s.sampling || {}).unparsable;
    const chips = [
      chip(prefix + "samples", int(counts.samples)),
      chip("prompts", int(counts.prompts)),
      chip("failed", int(counts.failed), counts.failed > 0),
      chip("score errors", int(counts.score_errors), counts.score_errors > 0),
      chip("unparsable", int(unparsable), unparsable > 0),
      chip("truncated", int(truncated), truncated > 0),
    ];
    if (counts.not_attempted) chips.push(chip("not attempted", int(counts.not_attempted), true));
    chips.push(
      chip("tokens", `${int(usage.total_tokens)} (${int(usage.prompt_tokens)} in, ${int(usage.completion_tokens)} out)`),
      chip("cost", s.cost_usd === null || s.cost_usd === undefined ? "no price" : "$" + s.cost_usd.toFixed(4)),
    );
    for (const name of run.rewards.slice(1)) {
      chips.push(chip(name, pct(((s.rewards || {})[name] || {}).mean)));
    }
    return el("div", { class: "stats" }, chips);
  }

  function renderHeadline() {
    const head = document.getElementById("headline");
    const runs = meta.runs;
    const first = runs[0];
    const title = COMPARE ? `${runs[0].name} vs ${runs[1].name}` : first.name;
    const model = runs.map((run) => run.summary.model).filter(Boolean).join(" vs ");
    head.append(
      el("div", { class: "title" }, [
        el("h1", { text: "rewardflow · " + title }),
        el("span", { class: "muted", text: [model, first.summary.created_at].filter(Boolean).join(" · ") }),
      ]),
    );
    if (!COMPARE) {
      head.append(scoreBlock(first, first.primary || "score", first.primary), runChips(first, ""));
      return;
    }
    runs.forEach((run, index) => {
      const name = CMP_REWARD || run.primary;
      head.append(scoreBlock(run, `${index ? "B · candidate" : "A · baseline"} ${run.name} · ${name}`, name));
    });
    const cmp = meta.comparison;
    if (cmp) {
      const pts = (x) => (x >= 0 ? "+" : "") + (100 * x).toFixed(1);
      head.append(
        el("div", { class: "score-block" }, [
          el("div", { class: "label", text: "difference (paired)" }),
          el("div", { class: "value", text: pts(cmp.diff) + " pts" }),
          el("div", {
            class: "ci",
            text: `95% ${pts(cmp.low)} to ${pts(cmp.high)} pts · p = ${Number(cmp.p_value).toPrecision(3)} · ${int(cmp.shared)} shared prompts`,
          }),
        ]),
      );
    }
    head.append(el("div", { class: "stats", id: "compare-chips" }));
    runs.forEach((run, index) => head.append(runChips(run, (index ? "B" : "A") + " ")));
  }

  // --- rows and columns ---------------------------------------------------------------------

  function metaValue(prompt, field) {
    const value = (prompt.metadata || {})[field];
    return value === undefined || value === null ? "(none)" : text(value);
  }

  function rewardScore(sample, name) {
    const result = sample.sc && sample.sc[name];
    return result && typeof result.score === "number" ? result.score : null;
  }

  // A sample's score in a comparison: as rewardflow compare counts it (run_files.py).
  function pairedScore(run, sample) {
    if (!CMP_REWARD || CMP_REWARD === run.primary) return typeof sample.s === "number" ? sample.s : null;
    return sample.st === "scored" || sample.st === "score_error" ? rewardScore(sample, CMP_REWARD) : null;
  }

  function verdict(run, samples) {
    const threshold = (run.summary.sampling || {}).pass_threshold ?? 1;
    const scores = samples.map((s) => pairedScore(run, s));
    const scored = scores.filter((x) => x !== null);
    if (!scored.length) return samples.length ? samples[0].st : "missing";
    const passed = scored.filter((x) => x >= threshold).length;
    if (scored.length === 1 && samples.length === 1) return passed ? "pass" : "fail";
    return `${passed}/${scored.length} pass` + (scored.length < samples.length ? ` (${samples.length - scored.length} unscored)` : "");
  }

  function verdictTone(value) {
    return value === "pass" ? "good" : value === "fail" ? "bad" : "muted";
  }

  function mean(values) {
    const scored = values.filter((x) => typeof x === "number");
    return scored.length ? scored.reduce((a, b) => a + b, 0) / scored.length : null;
  }

  // The writer streams a run's shards, so the samples come in file order; every view starts
  // from key order (prompt id, then sample index), which also orders each prompt's cards.
  function sortByKey(run) {
    const ids = run.prompts.map((prompt) => prompt.id);
    const order = ids.map((id, index) => index);
    order.sort((x, y) => (ids[x] < ids[y] ? -1 : ids[x] > ids[y] ? 1 : 0));
    const rank = new Int32Array(order.length);
    order.forEach((prompt, position) => (rank[prompt] = position));
    run.samples.sort((x, y) => rank[x.p] - rank[y.p] || x.i - y.i);
  }

  function buildRunRows() {
    const run = meta.runs[0];
    run.samples.forEach((sample, index) => {
      const prompt = run.prompts[sample.p];
      (prompt.samples || (prompt.samples = [])).push(sample);
      sample.n = index;
      sample.key = prompt.id + "/" + sample.i;
    });
    state.rows = run.samples;
    const prompt = (s) => run.prompts[s.p];
    state.columns = [
      { key: "id", label: "id", width: "minmax(7em, 2fr)", get: (s) => prompt(s).id },
      { key: "i", label: "#", width: "3em", numeric: true, get: (s) => s.i },
      ...run.groups.map((field) => ({
        key: "g:" + field, label: field, width: "minmax(4em, 1fr)", get: (s) => metaValue(prompt(s), field),
      })),
      { key: "st", label: "status", width: "10.5em", status: true, get: (s) => s.st },
      ...run.rewards.map((name) => ({
        key: "r:" + name, label: name, width: "minmax(6.5em, 0.8fr)", numeric: true, get: (s) => rewardScore(s, name), format: num,
      })),
      { key: "tok", label: "tokens", width: "6em", numeric: true, get: (s) => (s.u ? s.u.completion_tokens ?? null : null), format: int },
    ];
  }

  function buildCompareRows() {
    const [a, b] = meta.runs;
    for (const run of meta.runs) {
      run.byId = new Map();
      run.samples.forEach((sample) => {
        const prompt = run.prompts[sample.p];
        (prompt.samples || (prompt.samples = [])).push(sample);
      });
      run.prompts.forEach((prompt) => run.byId.set(prompt.id, prompt));
    }
    const rows = [];
    for (const pa of a.prompts) {
      const pb = b.byId.get(pa.id);
      if (!pb) continue;
      const ma = mean(pa.samples.map((s) => pairedScore(a, s)));
      const mb = mean(pb.samples.map((s) => pairedScore(b, s)));
      const va = verdict(a, pa.samples);
      const vb = verdict(b, pb.samples);
      rows.push({
        n: rows.length, key: pa.id, pa, pb, ma, mb, va, vb,
        delta: ma !== null && mb !== null ? mb - ma : null,
        changed: va !== vb,
        st: new Set([...pa.samples, ...pb.samples].map((s) => s.st)),
        truncated: [...pa.samples, ...pb.samples].some((s) => s.fr === "length"),
      });
    }
    state.rows = rows;
    state.onlyA = a.prompts.length - rows.length;
    state.onlyB = b.prompts.filter((p) => !a.byId.has(p.id)).length;
    state.columns = [
      { key: "id", label: "id", width: "minmax(7em, 2fr)", get: (r) => r.key },
      ...a.groups.map((field) => ({
        key: "g:" + field, label: field, width: "minmax(4em, 1fr)", get: (r) => metaValue(r.pa, field),
      })),
      { key: "va", label: "A", title: "verdict of A: " + a.name, width: "minmax(4em, 1fr)", get: (r) => r.va, tone: verdictTone },
      { key: "vb", label: "B", title: "verdict of B: " + b.name, width: "minmax(4em, 1fr)", get: (r) => r.vb, tone: verdictTone },
      { key: "ma", label: "A mean", width: "5em", numeric: true, get: (r) => r.ma, format: num },
      { key: "mb", label: "B mean", width: "5em", numeric: true, get: (r) => r.mb, format: num },
      { key: "delta", label: "Δ", width: "5em", numeric: true, get: (r) => r.delta, format: (x) => (x > 0 ? "+" : "") + num(x) },
      { key: "changed", label: "verdict", width: "6.5em", get: (r) => (r.changed ? "changed" : "same") },
    ];
    // Prompts whose verdict changed come first, the biggest moves at the top.
    rows.sort((x, y) => y.changed - x.changed || Math.abs(y.delta || 0) - Math.abs(x.delta || 0) || (x.key < y.key ? -1 : 1));
    rows.forEach((row, index) => (row.n = index));
    const changed = rows.filter((r) => r.changed).length;
    const chips = document.getElementById("compare-chips");
    chips.append(
      chip("shared prompts", int(rows.length)),
      chip("changed verdicts", int(changed), changed > 0),
    );
    if (state.onlyA) chips.append(chip("only in A", int(state.onlyA)));
    if (state.onlyB) chips.append(chip("only in B", int(state.onlyB)));
  }

  // --- filters ------------------------------------------------------------------------------

  const filters = { search: "", status: "", min: null, max: null, groups: {}, changed: false };

  function promptHay(prompt) {
    if (prompt.hay === undefined) {
      prompt.hay = prompt.messages.map((m) => text(m.content)).join("\n").toLowerCase();
    }
    return prompt.hay;
  }
  function sampleHay(sample) {
    if (sample.hay === undefined) sample.hay = (sample.r || "").toLowerCase();
    return sample.hay;
  }

  function passesRun(s) {
    const run = meta.runs[0];
    const prompt = run.prompts[s.p];
    if (filters.status === "truncated" ? s.fr !== "length" : filters.status && s.st !== filters.status) return false;
    if (filters.min !== null || filters.max !== null) {
      if (typeof s.s !== "number") return false;
      if (filters.min !== null && s.s < filters.min) return false;
      if (filters.max !== null && s.s > filters.max) return false;
    }
    for (const [field, value] of Object.entries(filters.groups)) {
      if (value && metaValue(prompt, field) !== value) return false;
    }
    if (filters.search && !promptHay(prompt).includes(filters.search) && !sampleHay(s).includes(filters.search)) return false;
    return true;
  }

  function passesCompare(r) {
    if (filters.changed && !r.changed) return false;
    if (filters.status === "truncated" ? !r.truncated : filters.status && !r.st.has(filters.status)) return false;
    if (filters.min !== null || filters.max !== null) {
      if (r.delta === null) return false;
      if (filters.min !== null && r.delta < filters.min) return false;
      if (filters.max !== null && r.delta > filters.max) return false;
    }
    for (const [field, value] of Object.entries(filters.groups)) {
      if (value && metaValue(r.pa, field) !== value) return false;
    }
    if (filters.search) {
      const q = filters.search;
      const hit =
        promptHay(r.pa).includes(q) ||
        r.pa.samples.some((s) => sampleHay(s).includes(q)) ||
        r.pb.samples.some((s) => sampleHay(s).includes(q));
      if (!hit) return false;
    }
    return true;
  }

  function compareValues(x, y) {
    const xNull = x === null || x === undefined;
    const yNull = y === null || y === undefined;
    if (xNull || yNull) return xNull && yNull ? 0 : xNull ? 1 : -1;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function applyFilters(keepScroll) {
    const passes = COMPARE ? passesCompare : passesRun;
    let view = state.rows.filter(passes);
    const column = state.columns.find((c) => c.key === state.sortKey);
    if (column) {
      const dir = state.sortDir;
      const values = new Map(view.map((row) => [row, column.get(row)]));
      view = view.slice().sort((x, y) => {
        const a = values.get(x);
        const b = values.get(y);
        const nulls = (a === null || a === undefined) - (b === null || b === undefined);
        return nulls || dir * compareValues(a, b) || x.n - y.n;
      });
    }
    state.view = view;
    state.position = new Map(view.map((row, index) => [row, index]));
    const noun = COMPARE ? "shared prompts" : "samples";
    document.getElementById("row-count").textContent = `${int(view.length)} of ${int(state.rows.length)} ${noun}`;
    if (!keepScroll) document.getElementById("table-body").scrollTop = 0;
    renderHead();
    renderRows();
  }

  function buildControls() {
    const box = document.getElementById("controls");
    const refilter = () => applyFilters(false);
    let timer = null;
    const search = el("input", {
      type: "search", id: "f-search", placeholder: "search prompts and responses",
      oninput: (event) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          filters.search = event.target.value.trim().toLowerCase();
          refilter();
        }, 150);
      },
    });
    const status = el("select", {
      id: "f-status",
      onchange: (event) => { filters.status = event.target.value; refilter(); },
    }, [
      el("option", { value: "", text: "any status" }),
      ...STATUSES.map((s) => el("option", { value: s, text: s })),
      el("option", { value: "truncated", text: "truncated" }),
    ]);
    const bound = (id, key, label) =>
      el("label", {}, [label, el("input", {
        type: "number", id, step: "0.1",
        oninput: (event) => {
          const value = event.target.value === "" ? null : Number(event.target.value);
          filters[key] = Number.isFinite(value) ? value : null;
          refilter();
        },
      })]);
    const rangeLabel = COMPARE ? "Δ" : meta.runs[0].primary || "score";
    box.append(
      search,
      el("label", {}, ["status", status]),
      bound("f-min", "min", rangeLabel + " ≥"),
      bound("f-max", "max", "≤"),
    );
    for (const field of meta.runs[0].groups) {
      const values = new Set();
      for (const row of state.rows) {
        values.add(metaValue(COMPARE ? row.pa : meta.runs[0].prompts[row.p], field));
        if (values.size > 500) break;
      }
      box.append(el("label", {}, [field, el("select", {
        id: "f-group-" + field,
        onchange: (event) => { filters.groups[field] = event.target.value; refilter(); },
      }, [el("option", { value: "", text: "all" }), ...[...values].sort().map((v) => el("option", { value: v, text: v }))])]));
    }
    if (COMPARE) {
      box.append(el("label", {}, [el("input", {
        type: "checkbox", id: "f-changed",
        onchange: (event) => { filters.changed = event.target.checked; refilter(); },
      }), "changed verdicts only"]));
    }
    box.append(el("button", { id: "f-reset", type: "button", onclick: () => { resetFilters(); refilter(); }, text: "reset" }));
  }

  function resetFilters() {
    Object.assign(filters, { search: "", status: "", min: null, max: null, groups: {}, changed: false });
    for (const node of document.querySelectorAll("#controls input, #controls select")) {
      if (node.type === "checkbox") node.checked = false;
      else node.value = "";
    }
  }

  // --- the table ----------------------------------------------------------------------------

  function gridTemplate() {
    return state.columns.map((c) => c.width).join(" ");
  }

  function renderHead() {
    const head = document.getElementById("table-head");
    head.style.gridTemplateColumns = gridTemplate();
    head.replaceChildren(...state.columns.map((column) => {
      const arrow = state.sortKey === column.key ? (state.sortDir > 0 ? " ▲" : " ▼") : "";
      return el("div", {
        class: "cell" + (column.numeric ? " num" : ""), role: "columnheader", "data-key": column.key, title: "sort by " + (column.title || column.label),
        onclick: () => {
          if (state.sortKey === column.key) state.sortDir = -state.sortDir;
          else { state.sortKey = column.key; state.sortDir = 1; }
          applyFilters(false);
        },
      }, [column.label + arrow]);
    }));
  }

  function renderRows() {
    const body = document.getElementById("table-body");
    const spacer = document.getElementById("table-spacer");
    const view = state.view;
    spacer.style.height = Math.max(view.length * ROW_H, body.clientHeight - 1) + "px";
    if (!view.length) {
      spacer.replaceChildren(el("p", { class: "muted", style: "padding: 0 12px", text: "No sample matches these filters." }));
      return;
    }
    const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(view.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW_H) + OVERSCAN);
    const template = gridTemplate();
    const nodes = [];
    for (let index = first; index < last; index++) {
      const row = view[index];
      const node = el("div", {
        class: "row" + (row === state.current ? " selected" : ""), role: "row",
        "data-index": index, "data-key": row.key,
      });
      node.style.top = index * ROW_H + "px";
      node.style.gridTemplateColumns = template;
      for (const column of state.columns) {
        const value = column.get(row);
        const shown = column.format ? column.format(value) : value === null || value === undefined ? "–" : String(value);
        const cell = el("div", { class: "cell" + (column.numeric ? " num" : "") });
        if (column.status) cell.append(el("span", { class: "status " + value, text: shown }));
        else if (column.key === "changed" && value === "changed") cell.append(el("b", { class: "warn", text: shown }));
        else cell.textContent = shown;
        if (column.tone) cell.classList.add(column.tone(value));
        cell.title = shown;
        node.append(cell);
      }
      nodes.push(node);
    }
    spacer.replaceChildren(...nodes);
  }

  function select(index, scroll) {
    if (index < 0 || index >= state.view.length) return;
    const row = state.view[index];
    state.current = row;
    if (scroll) {
      const body = document.getElementById("table-body");
      const top = index * ROW_H;
      if (top < body.scrollTop) body.scrollTop = top;
      else if (top + ROW_H > body.scrollTop + body.clientHeight) body.scrollTop = top + ROW_H - body.clientHeight;
    }
    renderRows();
    renderDetail(row);
    const hash = (COMPARE ? "#prompt=" : "#sample=") + encodeURIComponent(row.key);
    if (location.hash !== hash) {
      // Inside the Snakemake report the page runs in a frame that may refuse history changes.
      try { history.replaceState(null, "", hash); } catch (error) { /* no permalink there */ }
    }
  }

  function openFromHash() {
    const match = /^#(?:sample|prompt)=(.*)$/.exec(location.hash);
    if (!match) return false;
    let key;
    try { key = decodeURIComponent(match[1]); } catch (error) { return false; }
    if (!state.byKey) state.byKey = new Map(state.rows.map((row) => [row.key, row]));
    const row = state.byKey.get(key);
    if (!row) return false;
    if (!state.position.has(row)) { resetFilters(); applyFilters(false); }
    select(state.position.get(row), true);
    return true;
  }

  // --- the detail pane ----------------------------------------------------------------------

  function messages(list) {
    return list.map((m) =>
      el("div", { class: "message" }, [el("div", { class: "role", text: m.role }), el("pre", { class: "text", text: text(m.content) })]),
    );
  }

  function rewardsTable(run, sample) {
    const names = [...run.rewards, ...Object.keys(sample.sc || {}).filter((n) => !run.rewards.includes(n))];
    const rows = [];
    for (const name of names) {
      const result = (sample.sc || {})[name];
      if (!result) continue;
      if (result.error !== undefined && result.score === undefined) {
        rows.push(el("tr", { "data-reward": name }, [el("td", { text: name }), el("td", { class: "num bad", text: "error" }), el("td", { class: "bad", text: text(result.error) })]));
        continue;
      }
      rows.push(el("tr", { "data-reward": name }, [el("td", {}, [el("b", { text: name })]), el("td", { class: "num", text: num(result.score) }), el("td", { text: text(result.reason) })]));
      for (const [metric, value] of Object.entries(result.metrics || {})) {
        rows.push(el("tr", { class: "sub" }, [el("td", { text: metric }), el("td", { class: "num", text: num(value && value.score) }), el("td", { text: text(value && value.reason) })]));
      }
    }
    if (typeof sample.ws === "number") rows.push(el("tr", {}, [el("td", { text: "weighted" }), el("td", { class: "num", text: num(sample.ws) }), el("td")]));
    return rows.length ? el("table", { class: "rewards" }, rows) : null;
  }

  function card(run, sample, current) {
    const usage = sample.u || {};
    const details = [
      sample.fr ? "finish: " + sample.fr : null,
      sample.u ? `tokens: ${int(usage.prompt_tokens)} in, ${int(usage.completion_tokens)} out` : null,
      typeof sample.l === "number" ? `latency: ${sample.l.toFixed(2)} s` : null,
      sample.m ? "model: " + sample.m : null,
    ].filter(Boolean);
    return el("div", { class: "card" + (current ? " current" : ""), "data-sample": sample.i }, [
      el("header", {}, [
        el("b", { text: "sample " + sample.i }),
        el("span", { class: "status " + sample.st, text: sample.st }),
        typeof sample.s === "number" ? el("span", { text: (run.primary || "score") + " " + num(sample.s) }) : null,
      ]),
      details.length ? el("div", { class: "meta", text: details.join(" · ") }) : null,
      sample.fr === "length" ? el("div", { class: "warn", text: "truncated: the response hit max_tokens" }) : null,
      sample.e
        ? el("div", { class: "error-box generation-error" }, [el("b", { text: sample.e.type }), ": " + text(sample.e.message), sample.e.attempts ? ` (${sample.e.attempts} attempts)` : ""])
        : null,
      sample.se ? el("div", { class: "error-box score-error" }, [el("b", { text: "score error" }), ": " + sample.se]) : null,
      sample.r !== undefined && sample.r !== null
        ? el("div", { class: "message response" }, [el("div", { class: "role", text: "assistant" }), el("pre", { class: "text", text: sample.r })])
        : null,
      rewardsTable(run, sample),
    ]);
  }

  function promptHeader(prompt, extra) {
    const metadata = Object.entries(prompt.metadata || {});
    return [
      el("h2", { text: prompt.id }),
      extra,
      el("dl", { class: "kv" }, [el("dt", { text: "ground truth" }), el("dd", { class: "ground-truth", text: prompt.ground_truth ?? "(none)" })]),
      metadata.length
        ? el("details", {}, [el("summary", { class: "muted", text: `metadata (${metadata.length} fields)` }),
            el("dl", { class: "kv" }, metadata.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: text(v) })]))])
        : null,
      el("h3", { text: "prompt" }),
      ...messages(prompt.messages),
    ].filter(Boolean); // replaceChildren() would show a null as the text "null"
  }

  function renderDetail(row) {
    const pane = document.getElementById("detail");
    pane.scrollTop = 0;
    if (!COMPARE) {
      const run = meta.runs[0];
      const prompt = run.prompts[row.p];
      pane.replaceChildren(
        ...promptHeader(prompt, null),
        el("h3", { text: prompt.samples.length > 1 ? `${prompt.samples.length} samples` : "response" }),
        el("div", { class: "cards" }, prompt.samples.map((s) => card(run, s, s === row))),
      );
      pane.dataset.key = row.key;
      return;
    }
    const [a, b] = meta.runs;
    const sameMessages = JSON.stringify(row.pa.messages) === JSON.stringify(row.pb.messages);
    const side = (run, prompt, verdictText, label) =>
      el("div", { class: "side", "data-run": run.name }, [
        el("h3", { text: `${label}: ${run.name} — ${verdictText}` }),
        ...(sameMessages ? [] : [el("div", { class: "muted", text: "this run's prompt:" }), ...messages(prompt.messages)]),
        ...prompt.samples.map((s) => card(run, s, false)),
      ]);
    pane.replaceChildren(
      ...promptHeader(row.pa, row.changed ? el("div", { class: "warn", text: `verdict changed: ${row.va} → ${row.vb}` }) : el("div", { class: "muted", text: "verdict unchanged: " + row.va })),
      el("div", { class: "pair" }, [side(a, row.pa, row.va, "A"), side(b, row.pb, row.vb, "B")]),
    );
    pane.dataset.key = row.key;
  }

  // --- start-up -----------------------------------------------------------------------------

  function onKey(event) {
    const target = event.target;
    if (target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName)) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const index = state.current && state.position.has(state.current) ? state.position.get(state.current) : -1;
    if (event.key === "j" || event.key === "ArrowDown") { select(index + 1, true); event.preventDefault(); }
    else if (event.key === "k" || event.key === "ArrowUp") { select(Math.max(0, index - 1), true); event.preventDefault(); }
    else if (event.key === "/") { document.getElementById("f-search").focus(); event.preventDefault(); }
  }

  function start() {
    meta.runs.forEach((run, index) => {
      run.prompts = readJSON("rf-prompts-" + index);
      run.samples = readJSON("rf-samples-" + index);
      sortByKey(run);
    });
    if (COMPARE) buildCompareRows(); else buildRunRows();
    buildControls();
    applyFilters(false);
    const body = document.getElementById("table-body");
    let pending = false;
    body.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; renderRows(); });
    });
    window.addEventListener("resize", () => renderRows());
    body.addEventListener("click", (event) => {
      const node = event.target.closest(".row");
      if (node) select(Number(node.dataset.index), false);
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", openFromHash);
    if (!openFromHash() && state.view.length) select(0, false);
    // The first frame with the table in it: what the render-time benchmark measures.
    requestAnimationFrame(() => {
      window.rewardflowRenderMs = performance.now();
      document.body.dataset.ready = "true";
    });
  }

  renderHeadline();
  // The headline is on the page before the sample data is even parsed (the benchmark reads it).
  window.rewardflowHeadlineMs = performance.now();
  return { start, state };
})();
