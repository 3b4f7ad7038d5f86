"""The explorer page's template (HTML, CSS and JS in one string; `explorer.page_html`
fills in __TITLE__ and __DATA__). Plain DOM code, no library, nothing fetched: the
file opens from disk in any current browser. Token text is only ever set with
`textContent`, so no token can inject markup."""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 8px 14px; background: #f3f3f3; border-bottom: 1px solid #ccc; }
header h1 { font-size: 17px; margin: 0 0 4px; }
header .models { color: #555; font-size: 12px; }
#controls { display: flex; gap: 14px; flex-wrap: wrap; align-items: center; margin-top: 6px; }
#layout { display: flex; height: calc(100vh - 92px); }
#list { width: 290px; overflow-y: auto; border-right: 1px solid #ccc; margin: 0; padding: 0; list-style: none; }
#list li { padding: 5px 10px; border-bottom: 1px solid #eee; cursor: pointer; }
#list li:hover { background: #f6f6ff; }
#list li.selected { background: #dde6ff; }
#list .meta { color: #666; font-size: 12px; }
#list .snippet { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 12px; }
#main { flex: 1; overflow-y: auto; padding: 10px 14px; }
#source { white-space: pre-wrap; font-size: 14px; margin-bottom: 4px; }
#prompt { white-space: pre-wrap; background: #fafafa; border: 1px solid #ddd; padding: 6px; font-size: 13px; }
#runs { display: flex; gap: 12px; margin-top: 10px; }
.run { flex: 1; min-width: 0; border: 1px solid #ddd; padding: 6px; }
.run h3 { font-size: 14px; margin: 0 0 6px; }
.run .summary { color: #555; font-size: 12px; margin-bottom: 4px; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; line-height: 1.8; }
.tok { cursor: pointer; border-radius: 2px; padding: 1px 0; }
.tok.active { outline: 2px solid #000; }
.prior { background: #cfe0ff; border-bottom: 2px solid #3d6fd6; }
.unshifted { background: #d4f0d4; }
.marginal { background: #fff0b3; }
.shifted { background: #f8c4c4; }
#panel { width: 380px; overflow-y: auto; border-left: 1px solid #ccc; padding: 10px; font-size: 13px; }
#panel table { border-collapse: collapse; width: 100%; margin-bottom: 8px; }
#panel td, #panel th { border-bottom: 1px solid #eee; padding: 1px 4px; text-align: left; }
#panel td.p, #panel th.p { text-align: right; font-variant-numeric: tabular-nums; }
#panel tr.sft-choice td { font-weight: bold; }
#panel tr.chosen td { background: #eef; }
.legend span { padding: 0 5px; margin-right: 4px; }
.muted { color: #777; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<div class="models">foundation: <span id="foundation"></span> &middot; SFT: <span id="sft"></span> &middot; trajectory: <span id="trajectory"></span></div>
<div id="controls">
<label>filter <input id="filter" type="search" placeholder="source, prompt, output or id"></label>
<label>sort by <select id="sort">
<option value="order">example order</option>
<option value="kl">mean KL(SFT&#8214;LM), highest first</option>
<option value="shifted">share of shifted tokens, highest first</option>
</select></label>
<label>for <select id="sort-k"></select></label>
<span>colour: <label><input type="radio" name="colour" value="class" checked> shift class</label>
<label><input type="radio" name="colour" value="kl"> KL</label></span>
<span class="legend"><span class="prior">prior</span><span class="unshifted">unshifted</span><span class="marginal">marginal</span><span class="shifted">shifted</span></span>
</div>
</header>
<div id="layout">
<ul id="list"></ul>
<div id="main"><div class="muted">Choose an example on the left.</div></div>
<div id="panel"><div class="muted">Hover over or click a token of an output to see both models' next-token distributions at that step.</div></div>
</div>
<script type="application/octet-stream" id="data">__DATA__</script>
<script>
"use strict";
let DATA = null;
const CLASSES = ["unshifted", "marginal", "shifted"];
const state = { selected: null, pinned: null };

function el(tag, props, children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children || []) node.append(child);
  return node;
}
function tokenText(id) { const t = DATA.tokens[String(id)]; return t === undefined ? "<" + id + ">" : t; }
function shownToken(id) { return JSON.stringify(tokenText(id)).slice(1, -1); }
function shiftClass(rank) { return rank === 0 ? 0 : rank <= 2 ? 1 : 2; }
function mean(values) { values = values.filter(v => v !== null); return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null; }
function shiftedShare(run) { return run.rank.length ? run.rank.filter(r => shiftClass(r) === 2).length / run.rank.length : null; }
function label(k) { return k === "0" ? "no prior" : k + " prior token" + (k === "1" ? "" : "s"); }
function fmt(x, digits) { return x === null || x === undefined ? "–" : x.toFixed(digits); }
function snippet(text) { const flat = text.replace(/\s+/g, " ").trim(); return flat.length > 80 ? flat.slice(0, 80) + "…" : flat; }
function outputText(run) { return run.prior.concat(run.trajectory).map(tokenText).join(""); }

function sortedExamples() {
  const k = document.getElementById("sort-k").value, how = document.getElementById("sort").value;
  const needle = document.getElementById("filter").value.toLowerCase();
  let rows = DATA.examples.map((e, index) => ({ e, index }));
  if (needle) {
    rows = rows.filter(({ e }) => (e.id + "\n" + e.source + "\n" + e.prompt + "\n" +
      Object.values(e.runs).map(outputText).join("\n")).toLowerCase().includes(needle));
  }
  const key = how === "kl" ? (e => mean(e.runs[k].kl)) : how === "shifted" ? (e => shiftedShare(e.runs[k])) : null;
  if (key) rows.sort((a, b) => ((key(b.e) ?? -1) - (key(a.e) ?? -1)) || a.index - b.index);
  return rows;
}

function renderList() {
  const k = document.getElementById("sort-k").value, list = document.getElementById("list");
  const rows = sortedExamples();
  list.replaceChildren();
  for (const { e, index } of rows) {
    const run = e.runs[k];
    const meta = "KL " + fmt(mean(run.kl), 3) + " · shifted " + fmt(100 * (shiftedShare(run) ?? NaN), 0) + "% (" + label(k) + ")";
    const item = el("li", { className: index === state.selected ? "selected" : "" },
      [el("div", { textContent: e.id }), el("div", { className: "meta", textContent: meta }),
       el("div", { className: "snippet", textContent: snippet(e.source), title: e.source })]);
    item.dataset.index = index;
    item.addEventListener("click", () => select(index));
    list.append(item);
  }
  // The detail pane never shows an example the filter leaves out.
  if (!rows.some(({ index }) => index === state.selected)) {
    if (rows.length) select(rows[0].index);
    else clearDetail();
  }
}

function clearDetail() {
  state.selected = null;
  state.pinned = null;
  document.getElementById("main").replaceChildren(el("div", { className: "muted", textContent: "No example matches the filter." }));
  document.getElementById("panel").replaceChildren();
}

function klColour(kl) {
  const t = Math.min(1, kl / 3);
  return "rgb(255," + Math.round(255 - 150 * t) + "," + Math.round(255 - 150 * t) + ")";
}

function renderRun(example, k) {
  const run = example.runs[k], colour = document.querySelector("input[name=colour]:checked").value;
  const text = el("div", { className: "text" });
  run.prior.forEach(id => text.append(el("span", { className: "prior", textContent: tokenText(id), title: "prior token" })));
  run.trajectory.forEach((id, step) => {
    const span = el("span", { className: "tok", textContent: tokenText(id) });
    if (colour === "kl") span.style.background = klColour(run.kl[step]);
    else span.classList.add(CLASSES[shiftClass(run.rank[step])]);
    span.dataset.k = k;
    span.dataset.step = step;
    span.addEventListener("mouseenter", () => { if (state.pinned === null) showStep(example, k, step); });
    span.addEventListener("click", () => { state.pinned = [k, step]; showStep(example, k, step); markActive(span); });
    text.append(span);
  });
  const summary = "steps " + run.trajectory.length + " · mean KL " + fmt(mean(run.kl), 3) +
    " · shifted " + fmt(100 * (shiftedShare(run) ?? NaN), 0) + "%";
  return el("div", { className: "run" }, [el("h3", { textContent: label(k) }), el("div", { className: "summary", textContent: summary }), text]);
}

function markActive(span) {
  document.querySelectorAll(".tok.active").forEach(node => node.classList.remove("active"));
  span.classList.add("active");
}

function select(index) {
  state.selected = index;
  state.pinned = null;
  const example = DATA.examples[index];
  const main = document.getElementById("main");
  main.replaceChildren(el("h2", { textContent: example.id }), el("div", { id: "source", textContent: example.source }),
    el("details", {}, [el("summary", { textContent: "the whole prompt" }), el("div", { id: "prompt", textContent: example.prompt })]),
    el("div", { id: "runs" }, DATA.ks.map(k => renderRun(example, k))));
  document.querySelectorAll("#list li").forEach(li => li.classList.toggle("selected", Number(li.dataset.index) === index));
}

function topTable(caption, ids, logprobs, sftChoice, chosen, cls) {
  const rows = ids.map((id, i) => {
    const row = el("tr", {}, [el("td", { textContent: String(i + 1) }), el("td", { className: "t", textContent: shownToken(id) }),
      el("td", { className: "p", textContent: fmt(logprobs[i] === null ? null : Math.exp(logprobs[i]), 4) })]);
    if (id === sftChoice) row.classList.add("sft-choice");
    if (id === chosen) row.classList.add("chosen");
    return row;
  });
  return el("table", { className: cls }, [el("caption", { textContent: caption }),
    el("tr", {}, [el("th", { textContent: "#" }), el("th", { textContent: "token" }), el("th", { className: "p", textContent: "p" })]), ...rows]);
}

function showStep(example, k, step) {
  const run = example.runs[k], sftChoice = run.sft_top[step][0], chosen = run.trajectory[step];
  const facts = el("table", { className: "facts" }, [
    ["step", "step", String(step + 1) + " (" + label(k) + ")"], ["token", "token", shownToken(chosen)],
    ["SFT token", "sft-token", shownToken(sftChoice)], ["its foundation rank", "rank", String(run.rank[step] + 1)],
    ["shift class", "class", CLASSES[shiftClass(run.rank[step])]],
    ["p_LM(SFT token)", "p-lm-of-sft", fmt(run.p_lm_of_sft[step], 4)],
    ["KL(SFT‖LM)", "kl", fmt(run.kl[step], 4)], ["JS", "js", fmt(run.js[step], 4)],
  ].map(([name, cls, value]) => el("tr", {}, [el("th", { textContent: name }), el("td", { className: cls, textContent: value })])));
  document.getElementById("panel").replaceChildren(facts,
    topTable("foundation: top " + run.lm_top[step].length, run.lm_top[step], run.lm_lp[step], sftChoice, chosen, "lm-top"),
    topTable("SFT: top " + run.sft_top[step].length, run.sft_top[step], run.sft_lp[step], sftChoice, chosen, "sft-top"));
}

async function loadData() {
  const encoded = document.getElementById("data").textContent.trim();
  const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

function start(data) {
DATA = data;
document.getElementById("foundation").textContent = DATA.foundation;
document.getElementById("sft").textContent = DATA.sft;
document.getElementById("trajectory").textContent = DATA.trajectory;
const sortK = document.getElementById("sort-k");
DATA.ks.forEach(k => sortK.append(el("option", { value: k, textContent: label(k) })));
document.getElementById("filter").addEventListener("input", renderList);
for (const id of ["sort", "sort-k"]) document.getElementById(id).addEventListener("change", renderList);
document.querySelectorAll("input[name=colour]").forEach(r => r.addEventListener("change", () => { if (state.selected !== null) select(state.selected); }));
renderList();
if (DATA.examples.length) select(sortedExamples()[0].index);
document.body.dataset.ready = "true";
}

loadData().then(start, error => {
  document.getElementById("main").textContent = "This browser could not read the page's data: " + error;
  throw error;
});
</script>
</body>
</html>
"""
