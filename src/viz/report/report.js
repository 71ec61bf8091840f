// attend report: draws the page from the JSON document in #report-data (its layout is described
// in include/attend/viz/report.h). Embedded into every report by src/viz/report.cpp; plain
// JavaScript and SVG, nothing loaded from anywhere.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const root = document.getElementById("report");
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#6e7781", "#bf3989", "#0a8a8a"];
  const colorOf = (i) => PALETTE[i % PALETTE.length];

  // ---- small DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const fmt = (x, digits) =>
    Math.abs(x) >= 1e4 ? Math.round(x).toLocaleString("en-US") : x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toFixed(digits);

  // A packed matrix (report.h) -> rows of numbers in [0, 1].
  function unpack(p) {
    const bin = atob(p.data);
    const rows = [];
    for (let r = 0; r < p.rows; r++) {
      const row = new Float32Array(p.cols);
      for (let c = 0; c < p.cols; c++) row[c] = bin.charCodeAt(r * p.cols + c) / 255;
      rows.push(row);
    }
    return rows;
  }

  // White to dark blue, as the PNG heatmaps of attend align.
  function shade(w) {
    const t = Math.max(0, Math.min(1, w));
    const ch = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${ch(255, 8)},${ch(255, 48)},${ch(255, 107)})`;
  }

  // ---- header, warnings, model cards -----------------------------------------------------------
  function header() {
    root.append(el("h1", {}, data.title || "attend report"));
    const names = data.models.map((m) => m.name).join(", ");
    root.append(el("p", { class: "sub" }, `${data.models.length} model(s): ${names}. Generated ${data.generated || ""} by attend report.`));
    if (data.warnings && data.warnings.length) {
      const ul = el("ul", { class: "warnings", id: "warnings" });
      for (const w of data.warnings) ul.append(el("li", { class: "warning" }, w));
      root.append(ul);
    }
  }

  function card(m, i) {
    const box = el("section", { class: "card", "data-model": String(i) });
    box.append(el("h3", {}, el("span", { class: "swatch", style: `background:${colorOf(i)}` }), m.name));
    if (m.error) box.append(el("p", { class: "error" }, m.error));
    const table = el("table");
    for (const [label, value] of (m.card && m.card.rows) || [])
      table.append(el("tr", {}, el("td", {}, label), el("td", {}, String(value))));
    if (m.test) for (const [label, value] of m.test.rows) table.append(el("tr", {}, el("td", {}, label), el("td", {}, String(value))));
    box.append(table);
    for (const [summary, text] of (m.card && m.card.details) || [])
      box.append(el("details", {}, el("summary", {}, summary), el("pre", {}, text)));
    return box;
  }

  function cards() {
    root.append(el("h2", { id: "models" }, "Models"));
    const box = el("div", { class: "cards" });
    data.models.forEach((m, i) => box.append(card(m, i)));
    root.append(box);
  }

  // ---- training curves ---------------------------------------------------------------------------
  const METRICS = [
    { key: "train_loss", label: "training loss (per target token)", digits: 3 },
    { key: "dev_exact_match", label: "dev exact match (%)", scale: 100, digits: 2, when: (r) => r.metric === "exact" },
    { key: "dev_error_rate", label: "dev token error rate (%)", scale: 100, digits: 2, when: (r) => r.metric === "exact" },
    { key: "dev_bleu", label: "dev BLEU", digits: 2, when: (r) => r.metric === "bleu" || r.metric === "chrf" },
    { key: "dev_chrf", label: "dev chrF", digits: 2, when: (r) => r.metric === "bleu" || r.metric === "chrf" },
    { key: "dev_loss", label: "dev loss (teacher-forced)", digits: 3, when: (r) => r.metric === "loss" },
    { key: "lr", label: "learning rate", digits: 6 },
    { key: "tokens_per_second", label: "training target tokens/s", digits: 0, when: (r) => r.tokens_per_second > 0 },
  ];
  const X_AXES = {
    step: { label: "updates", of: (r) => r.step },
    time: { label: "minutes", of: (r) => r.elapsed_seconds / 60 },
  };

  // [min, max] by a loop: a long run's metrics can be more values than a spread call takes.
  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    return [lo, hi];
  }

  // Round tick values: about n of them over [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function seriesFor(metric, xAxis) {
    return data.models
      .map((m, i) => ({
        name: m.name,
        color: colorOf(i),
        points: (m.metrics || [])
          .filter((r) => (!metric.when || metric.when(r)) && Number.isFinite(r[metric.key]))
          .map((r) => ({ x: X_AXES[xAxis].of(r), y: r[metric.key] * (metric.scale || 1), best: r.best, step: r.step })),
      }))
      .filter((s) => s.points.length > 0);
  }

  function chartFrame(metric, xAxis, xs, ys) {
    const W = 480, H = 250, L = 60, R = 12, T = 26, B = 40;
    const [xlo, xhi] = extent(xs);
    const [x0, x1] = [Math.min(0, xlo), Math.max(xhi, 1e-9)];
    let [y0, y1] = extent(ys);
    if (y0 === y1) [y0, y1] = [y0 - (Math.abs(y0) * 0.1 || 1), y1 + (Math.abs(y1) * 0.1 || 1)];
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
    const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const svg = svgEl("svg", { class: "chart", "data-metric": metric.key, viewBox: `0 0 ${W} ${H}`, role: "img" });
    svg.append(svgEl("text", { class: "title", x: L, y: 16 }, metric.label));
    for (const v of ticks(y0, y1, 5)) {
      svg.append(svgEl("line", { class: "grid", x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
      svg.append(svgEl("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, fmt(v, metric.digits > 3 ? 4 : 2)));
    }
    const xLabel = (v) => (xAxis === "step" && v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : fmt(v, xAxis === "time" ? 1 : 0));
    for (const v of ticks(x0, x1, 6)) svg.append(svgEl("text", { x: sx(v), y: H - B + 16, "text-anchor": "middle" }, xLabel(v)));
    svg.append(svgEl("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(svgEl("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(svgEl("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, X_AXES[xAxis].label));
    return { svg, sx, sy };
  }

  function lineChart(metric, xAxis) {
    const series = seriesFor(metric, xAxis);
    if (!series.length) return null;
    const all = series.flatMap((s) => s.points);
    const { svg, sx, sy } = chartFrame(metric, xAxis, all.map((p) => p.x), all.map((p) => p.y));
    for (const s of series) {
      const d = s.points.map((p, k) => `${k ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
      svg.append(svgEl("path", { class: "series", d, stroke: s.color, "data-model": s.name }));
      for (const p of s.points) {
        const dot = svgEl("circle", { cx: sx(p.x), cy: sy(p.y), r: p.best ? 3.5 : 2.2, fill: s.color, class: p.best ? "best" : "" });
        dot.append(svgEl("title", {}, `${s.name}: ${fmt(p.y, metric.digits)} at step ${p.step}${p.best ? " (best so far)" : ""}`));
        svg.append(dot);
      }
    }
    return svg;
  }

  function legend() {
    const box = el("div", { class: "toolbar legend" });
    data.models.forEach((m, i) => box.append(el("span", {}, el("span", { class: "swatch", style: `background:${colorOf(i)}` }), m.name)));
    return box;
  }

  function training() {
    root.append(el("h2", { id: "training" }, "Training"));
    const bar = el("div", { class: "toolbar" }, "x axis:");
    const charts = el("div", { class: "charts", id: "charts" });
    const draw = (xAxis) => {
      charts.replaceChildren();
      for (const b of bar.querySelectorAll("button")) b.classList.toggle("on", b.dataset.x === xAxis);
      for (const metric of METRICS) {
        const chart = lineChart(metric, xAxis);
        if (chart) charts.append(el("div", { class: "chart-box" }, chart));
      }
      if (!charts.children.length) charts.append(el("p", { class: "note" }, "No training metrics (no model has a readable metrics.jsonl)."));
    };
    for (const x of Object.keys(X_AXES)) {
      const b = el("button", { "data-x": x }, X_AXES[x].label === "updates" ? "updates" : "wall time");
      b.addEventListener("click", () => draw(x));
      bar.append(b);
    }
    root.append(bar, legend(), charts);
    draw("step");
  }

  // ---- attention explorer ------------------------------------------------------------------------
  const view = { model: 0, sample: 0, map: -1, words: false };

  // Pieces merged into words (report.h: src_words/tgt_words give each token's word): weights summed
  // over a word's source pieces and averaged over its target pieces; </s> stays a row of its own.
  function mergeWords(rows, sample) {
    const sw = sample.src_words, words = Math.max(-1, ...sample.tgt_words) + 1;
    const tw = sample.tgt_words.concat(rows.length > sample.tgt_words.length ? [words] : []);
    const nS = Math.max(...sw) + 1, nT = Math.max(-1, ...tw) + 1;
    const out = Array.from({ length: nT }, () => new Float32Array(nS)), count = new Array(nT).fill(0);
    rows.forEach((row, t) => {
      count[tw[t]]++;
      row.forEach((w, s) => (out[tw[t]][s < sw.length ? sw[s] : nS - 1] += w));
    });
    out.forEach((row, t) => row.forEach((w, s) => (row[s] = w / Math.max(1, count[t]))));
    return out;
  }
  function wordLabels(tokens, groups, extra) {
    const words = [];
    tokens.forEach((tok, k) => (words[groups[k]] = (words[groups[k]] || "") + tok.replace(/^\u2581/, "")));
    return extra ? words.concat(extra) : words;
  }

  // What the heatmap shows: labels and rows for the current model, sample, map and word toggle.
  function matrix(m, sample) {
    const packed = view.map < 0 || !sample.maps ? sample.weights : sample.maps[view.map];
    let rows = unpack(packed), src = sample.src, tgt = sample.tgt;
    if (view.words && m.subwords) {
      rows = mergeWords(rows, sample);
      src = wordLabels(sample.src, sample.src_words);
      tgt = wordLabels(sample.tgt.slice(0, sample.tgt_words.length), sample.tgt_words, sample.tgt.slice(sample.tgt_words.length));
    }
    return { rows, src, tgt };
  }

  function heatmap(m, sample) {
    const { rows, src, tgt } = matrix(m, sample);
    const S = src.length, T = rows.length, cell = Math.max(12, Math.min(30, Math.floor(720 / Math.max(S, T, 1))));
    const left = 12 + 7.5 * Math.max(4, ...tgt.map((t) => t.length)), top = 12 + 6 * Math.max(4, ...src.map((s) => s.length));
    const svg = svgEl("svg", { class: "heatmap", id: "heatmap", width: left + S * cell + 10, height: top + T * cell + 10, "data-sample": String(view.sample), "data-map": String(view.map) });
    rows.forEach((row, t) => row.forEach((w, s) => {
      const r = svgEl("rect", { class: "cell", x: left + s * cell, y: top + t * cell, width: cell, height: cell, fill: shade(w), "data-t": t, "data-s": s });
      r.append(svgEl("title", {}, `${tgt[t] ?? ""} \u2190 ${src[s]}: ${w.toFixed(2)}`));
      svg.append(r);
    }));
    src.forEach((s, k) => svg.append(svgEl("text", { class: "src-label", "data-s": k, transform: `translate(${left + k * cell + cell / 2 + 4},${top - 6}) rotate(-60)` }, s)));
    tgt.forEach((t, k) => svg.append(svgEl("text", { class: "tgt-label", "data-t": k, x: left - 6, y: top + k * cell + cell / 2 + 4, "text-anchor": "end" }, t)));
    drawTrace(svg, sample, left, top, cell);
    wireHover(svg, rows);
    return svg;
  }

  // What the mechanism exposes per output step (e.g. local-p's predicted centre): a line over the map.
  function drawTrace(svg, sample, left, top, cell) {
    if (view.words || !sample.trace) return;
    for (const [name, values] of Object.entries(sample.trace)) {
      const pts = values.map((v, t) => [left + (v + 0.5) * cell, top + (t + 0.5) * cell]);
      const line = svgEl("polyline", { class: "trace", "data-trace": name, points: pts.map((p) => p.join(",")).join(" ") });
      line.append(svgEl("title", {}, name));
      svg.append(line);
      pts.forEach(([x, y], t) => {
        const dot = svgEl("circle", { class: "trace-point", cx: x, cy: y, r: 2.5 });
        dot.append(svgEl("title", {}, `${name} at step ${t + 1}: ${values[t].toFixed(2)}`));
        svg.append(dot);
      });
    }
  }

  // Hovering an output token (its label or row) highlights the source tokens it attends to, and
  // hovering a source token the output tokens that attend to it (weight >= 0.1, or the largest).
  function wireHover(svg, rows) {
    const clear = () => svg.querySelectorAll(".hl, .active").forEach((e) => e.classList.remove("hl", "active"));
    const mark = (sel, weights) => {
      const top = weights.indexOf(Math.max(...weights));
      svg.querySelectorAll(sel).forEach((e, k) => e.classList.toggle("hl", weights[k] >= 0.1 || k === top));
    };
    svg.addEventListener("mouseover", (ev) => {
      const t = ev.target.closest("[data-t], [data-s]");
      if (!t) return;
      clear();
      if (t.classList.contains("src-label")) {
        const s = Number(t.dataset.s);
        t.classList.add("active");
        mark("text.tgt-label", rows.map((row) => row[s]));
        return;
      }
      const r = Number(t.dataset.t);
      svg.querySelector(`text.tgt-label[data-t="${r}"]`).classList.add("active");
      svg.querySelectorAll(`rect.cell[data-t="${r}"]`).forEach((c) => c.classList.add("hl"));
      mark("text.src-label", Array.from(rows[r]));
    });
    svg.addEventListener("mouseleave", clear);
  }

  function statsTable(title, overall, one) {
    const table = el("table", { class: "stats" });
    table.append(el("tr", {}, el("th", {}, title), el("th", {}, "monotonicity"), el("th", {}, "entropy (nats)"), el("th", {}, "diagonality")));
    const row = (label, s) => el("tr", {}, el("td", {}, label), el("td", {}, `${(100 * s.monotonicity).toFixed(1)}%`), el("td", {}, s.entropy.toFixed(3)), el("td", {}, `${(100 * s.diagonality).toFixed(1)}%`));
    if (one) table.append(row("this sentence", one));
    if (overall) table.append(row(`all ${overall.sentences} samples`, overall));
    return table;
  }

  // The layers x heads grid of a Transformer: a thumbnail per map, the mean first; a click shows it large.
  function headGrid(m, sample, redraw) {
    const grid = el("div", { class: "heads", id: "heads", style: `grid-template-columns: repeat(${Math.max(1, ...m.maps.map((x) => x.head)) + 1}, minmax(60px, 120px))` });
    const thumb = (index, label, packed) => {
      const rows = unpack(packed), c = el("canvas", { class: "head" + (view.map === index ? " selected" : ""), width: packed.cols, height: packed.rows, "data-map": index, title: label });
      const ctx = c.getContext("2d"), img = ctx.createImageData(packed.cols, packed.rows);
      rows.forEach((row, t) => row.forEach((w, s) => {
        const o = 4 * (t * packed.cols + s), rgb = shade(w).match(/\d+/g);
        [img.data[o], img.data[o + 1], img.data[o + 2], img.data[o + 3]] = [rgb[0], rgb[1], rgb[2], 255];
      }));
      ctx.putImageData(img, 0, 0);
      c.addEventListener("click", () => { view.map = index; redraw(); });
      return el("div", { class: "cellbox" }, c, el("div", {}, label));
    };
    let layer = 0;
    m.maps.forEach((info, g) => {
      if (info.layer !== layer) {
        layer = info.layer;
        grid.append(layer === 1 ? thumb(-1, "mean", sample.weights) : el("div", {}));
      }
      grid.append(thumb(g, `layer ${info.layer} head ${info.head}`, sample.maps[g]));
    });
    return grid;
  }

  function samplePanel(m, panel) {
    const sample = m.samples[view.sample];
    const redraw = () => samplePanel(m, panel);
    panel.replaceChildren();
    panel.append(el("div", { class: "sentence" }, el("span", { class: "label" }, "input"), sample.source));
    panel.append(el("div", { class: "sentence" }, el("span", { class: "label" }, "reference"), sample.reference || "(none)"));
    panel.append(el("div", { class: "sentence" }, el("span", { class: "label" }, "output"), sample.error ? el("span", { class: "error" }, sample.error) : sample.output));
    if (sample.error) return;
    const bar = el("div", { class: "toolbar" });
    const mapName = view.map < 0 ? (m.maps.length ? "mean of all layers and heads" : "attention") : m.maps[view.map].name;
    bar.append(el("strong", { id: "map-name" }, mapName));
    if (m.subwords) {
      const b = el("button", { id: "words", class: view.words ? "on" : "" }, view.words ? "showing words" : "showing pieces");
      b.addEventListener("click", () => { view.words = !view.words; redraw(); });
      bar.append(b);
    }
    panel.append(bar, el("div", { class: "heatmap-box" }, heatmap(m, sample)));
    panel.append(statsTable("alignment", m.stats, sample.stats));
    if (m.maps.length) panel.append(headGrid(m, sample, redraw));
  }

  function sampleList(m, panel) {
    const list = el("ol", { class: "samples", id: "samples" });
    m.samples.forEach((s, k) => {
      // correct is null for an input without a reference.
      const state = s.error ? "failed" : s.correct === true ? "correct" : s.correct === false ? "wrong" : "unknown";
      const mark = { failed: "!", correct: "\u2713", wrong: "\u2717", unknown: "?" }[state];
      const li = el("li", { class: state, "data-index": k }, el("span", { class: "mark" }, mark), s.source, el("span", { class: "out" }, "\u2192 " + (s.error ? s.error : s.output)));
      li.addEventListener("click", () => {
        view.sample = k;
        list.querySelectorAll("li").forEach((e) => e.classList.toggle("selected", e === li));
        samplePanel(m, panel);
      });
      list.append(li);
    });
    return list;
  }

  function explorer() {
    root.append(el("h2", { id: "attention" }, "Attention"));
    const bar = el("div", { class: "toolbar" }), body = el("div", { class: "explorer", id: "explorer" });
    const show = (i) => {
      Object.assign(view, { model: i, sample: 0, map: -1, words: false });
      const m = data.models[i];
      body.replaceChildren();
      if (!m.samples || !m.samples.length) {
        body.append(el("p", { class: "note" }, m.error ? `No samples: ${m.error}` : "No samples to show."));
        return;
      }
      const panel = el("div", { class: "panel", id: "panel" });
      body.append(sampleList(m, panel), panel);
      body.querySelector("#samples li").classList.add("selected");
      samplePanel(m, panel);
    };
    if (data.models.length > 1) {
      const select = el("select", { id: "model-select" });
      data.models.forEach((m, i) => select.append(el("option", { value: i }, m.name)));
      select.addEventListener("change", () => show(Number(select.value)));
      bar.append("model:", select);
    }
    root.append(bar, body);
    show(0);
  }

  header();
  cards();
  training();
  explorer();
  document.body.dataset.ready = "true";
})();
