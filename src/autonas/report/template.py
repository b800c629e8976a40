"""Jinja2 templates of the run report and the comparison page (kept in Python so the package
needs no extra data files). Autoescaping is on: only markup built by the report itself (SVG,
JSON for the script) is marked safe."""

# Markup lines, not Python: wrapping them to the line limit would only hurt reading them.
# ruff: noqa: E501

from __future__ import annotations

CSS = """
:root { --fg:#1d2430; --muted:#5b6575; --line:#dde2ea; --bg:#f6f8fb; --accent:#2563a8; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,
  sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:18px 22px 40px; }
header.top h1 { font-size:1.6rem; margin:0 0 4px; overflow-wrap:anywhere; }
.sub { color:var(--muted); margin:0 0 12px; overflow-wrap:anywhere; }
nav.toc { display:flex; flex-wrap:wrap; gap:6px 14px; margin:8px 0 4px; }
nav.toc a { color:var(--accent); text-decoration:none; }
section { background:#fff; border:1px solid var(--line); border-radius:10px;
  padding:14px 18px; margin:16px 0; }
h2 { font-size:1.25rem; margin:2px 0 10px; }
p, figcaption, li { overflow-wrap:anywhere; }
h3 { font-size:1.02rem; margin:16px 0 6px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:10px; }
.card { background:var(--bg); border:1px solid var(--line); border-radius:8px; padding:8px 10px; }
.card .k { color:var(--muted); font-size:.8rem; }
.card .v { font-size:1.15rem; font-weight:600; overflow-wrap:anywhere; }
.card .ci { color:var(--muted); font-size:.78rem; }
.figs { display:grid; grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));
  gap:14px; align-items:start; }
figure { margin:0; min-width:0; }
.figs > figure.wide { grid-column:1 / -1; }
figure.scroll { overflow-x:auto; }
figcaption { color:var(--muted); font-size:.85rem; margin-top:2px; }
svg.plot, svg.cell { display:block; width:100%; height:auto; }
svg.cell { margin:0 auto; }
img { max-width:100%; height:auto; }
.wrap { overflow-x:auto; max-width:100%; }
table { border-collapse:collapse; font-size:.88rem; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left;
  vertical-align:top; }
th { background:var(--bg); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px;
  overflow-x:auto; font-size:.78rem; line-height:1.35; }
details summary { cursor:pointer; color:var(--accent); margin:6px 0; }
.na { color:var(--muted); font-style:italic; }
.warn { color:#9a3b00; }
.alert { border:2px solid #b42318; background:#fef3f2; color:#7a271a; border-radius:8px;
  padding:8px 16px; margin:14px 0; }
.alert h2 { color:#b42318; margin-top:6px; }
.samples { display:grid; grid-template-columns:repeat(auto-fill,minmax(260px,1fr)); gap:10px; }
.samples .cls { font-size:.85rem; color:var(--muted); margin-bottom:3px;
  overflow-wrap:anywhere; }
.samples .row { display:flex; flex-wrap:wrap; gap:4px; }
.samples img { width:56px; height:56px; image-rendering:pixelated; border-radius:3px;
  background:#000; object-fit:contain; }
.state-done { color:#1b7a32; } .state-failed, .state-killed { color:#b42318; }
.state-interrupted, .state-running { color:#9a6700; }
.slider { display:flex; align-items:center; gap:10px; flex-wrap:wrap; margin:6px 0; }
.slider input { flex:1 1 200px; }
table.alpha td { text-align:center; min-width:2.6em; font-size:.75rem; padding:2px 3px; }
table.alpha td.max { outline:2px solid #d62728; outline-offset:-2px; font-weight:700; }
table.alpha th { font-size:.72rem; white-space:nowrap; }
@media (max-width:640px) {
  main { padding:10px 8px 30px; }
  section { padding:10px 10px; border-radius:8px; }
  header.top h1 { font-size:1.3rem; }
  .cards { grid-template-columns:repeat(2,minmax(0,1fr)); }
  figure.scroll svg { min-width:540px; }
}
"""

MACROS = """
{%- macro na(text="not available") -%}<p class="na">{{ text }}</p>{%- endmacro -%}
{%- macro num(key, value, digits=4) -%}
{%- if value is none -%}<span class="na" data-key="{{ key }}">n/a</span>
{%- else -%}<span class="num" data-key="{{ key }}" data-value="{{ value|string }}">
{{- fmt(value, digits) }}</span>{%- endif -%}
{%- endmacro -%}
{%- macro fig(svg, caption=None, wide="") -%}
{%- if svg -%}<figure{% if wide %} class="{{ wide }}"{% endif %}>{{ svg }}{% if caption %}<figcaption>{{ caption }}</figcaption>
{%- endif %}</figure>{%- endif -%}
{%- endmacro -%}
"""

REPORT = MACROS + """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autonas report: {{ run.name }}</title>
<style>{{ css }}</style>
</head>
<body>
<main>
<header class="top">
<h1>autonas report: {{ run.name }}</h1>
<p class="sub">{{ run.dataset or "unknown dataset" }} · strategy {{ run.strategy or "n/a" }}
 · space {{ run.space or "n/a" }} · seed {{ run.seed if run.seed is not none else "n/a" }}
 · generated {{ generated }} by autonas {{ version }}</p>
<nav class="toc"><a href="#overview">Overview</a><a href="#data">Data</a>
<a href="#search">Search</a><a href="#architecture">Architecture</a>
<a href="#model">Final model</a><a href="#test">Test results</a><a href="#run">Run</a></nav>
</header>
{% if warnings %}<section class="alert" id="warnings"><h2>{{ "Warning: not a trustworthy result"
if untrusted else "Warnings" }}</h2>
<ul>{% for w in warnings %}<li><b>{{ w.code }}</b>: {{ w.message }}</li>{% endfor %}</ul>
{% if untrusted %}<p>The numbers below are what this model scored, shown so the run can be
diagnosed; they are not a result to report.</p>{% endif %}</section>{% endif %}
{% if run.problems %}<section class="warn"><h2>Unreadable files</h2><ul>
{% for p in run.problems %}<li>{{ p }}</li>{% endfor %}</ul></section>{% endif %}

<section id="overview">
<h2>Overview</h2>
<div class="cards">
<div class="card"><div class="k">test accuracy</div><div class="v">
{{- num("test-accuracy", test.accuracy) }}</div>{% if ci.accuracy and ci.accuracy.low is not none
%}<div class="ci">95% CI {{ fmt(ci.accuracy.low) }} – {{ fmt(ci.accuracy.high) }}</div>
{% endif %}</div>
<div class="card"><div class="k">test AUC</div><div class="v">
{{- num("test-auc", test.auc) }}</div>{% if ci.auc and ci.auc.low is not none
%}<div class="ci">95% CI {{ fmt(ci.auc.low) }} – {{ fmt(ci.auc.high) }}</div>{% endif %}</div>
<div class="card"><div class="k">test loss</div><div class="v">
{{- num("test-loss", test.loss) }}</div>{% if ci.loss and ci.loss.low is not none
%}<div class="ci">95% CI {{ fmt(ci.loss.low) }} – {{ fmt(ci.loss.high) }}</div>{% endif %}</div>
<div class="card"><div class="k">parameters</div><div class="v">
{%- if model.params is none %}<span class="na" data-key="params">n/a</span>{% else
%}<span class="num" data-key="params" data-value="{{ model.params }}">{{
"{:,}".format(model.params) }}</span>{% endif %}</div></div>
<div class="card"><div class="k">time used / budget</div><div class="v">{{ seconds(run.seconds_used) }}
 / {{ seconds(run.budget) if run.budget else "none" }}</div></div>
<div class="card"><div class="k">strategy · space</div><div class="v">{{ run.strategy or "n/a" }}
 · {{ run.space or "n/a" }}</div></div>
</div>
</section>

<section id="data">
<h2>Data</h2>
{% if data %}
<p>{{ data.name }} · {{ data.task or "" }} · {{ data.n_classes }} classes ·
{{ data.channels }} channel{{ "s" if data.channels != 1 }} · {{ data.image_size|join("×") }} px
{%- if data.license %} · license {{ data.license }}{% endif %}</p>
<div class="wrap"><table>
<tr><th>split</th><th class="num">images</th>{% for c in class_names %}<th class="num">{{ c }}</th>
{% endfor %}</tr>
{% for split in splits %}<tr><td>{{ split.name }}</td><td class="num">{{ split.size }}</td>
{% for n, share in split.counts %}<td class="num">{{ n }} <span class="na">({{ "%.0f"|format(100 * share) }}%)</span></td>{% endfor %}</tr>
{% endfor %}</table></div>
{% else %}{{ na("dataset summary (data.json) not available") }}{% endif %}
<h3>Sample images</h3>
{% if samples_note %}<p class="na">{{ samples_note }}</p>{% endif %}
{% if samples %}<div class="samples">{% for name, uris in samples %}<div>
<div class="cls">{{ name }}</div><div class="row">{% for uri in uris %}<img src="{{ uri }}"
 alt="{{ name }} sample {{ loop.index }}">{% endfor %}</div></div>{% endfor %}</div>
{% else %}{{ na("no sample images in this run folder (samples.npz)") }}{% endif %}
</section>

<section id="search">
<h2>Search</h2>
{% if search.result %}<p>Stopped: {{ search.result.stopped or "n/a" }} after
{{ search.result.epochs if search.result.epochs is not none else "?" }} {{ "trials" if search.kind == "multi-trial" else "epochs" }}
{%- if search.seconds is not none %} · {{ seconds(search.seconds) }}{% endif %}.</p>{% endif %}
{% if search.result and search.result.fallback %}<p class="warn"><b>No architecture was searched:</b> {{ search.result.fallback }}.</p>{% endif %}
{% if search.result and search.result.limited %}<p class="warn"><b>The search barely searched:</b> {{ search.result.limited }}.</p>{% endif %}
{% if search.kind == "one-shot" %}
<div class="figs">{{ fig(search.loss, "Supernet loss per search epoch; grey: warm-up epochs with the architecture weights frozen.") }}
{{ fig(search.accuracy, "Supernet validation accuracy per search epoch.") }}
{{ fig(search.entropy, "Entropy of the softmaxed architecture weights (1 = uniform).") }}
{{ fig(search.skips, "Skip connections in the cells derived after each epoch.") }}</div>
<h3>Architecture weights</h3>
{% for t, svg in search.heatmaps %}<div class="figs">{{ fig(svg, t ~ " cell: softmaxed weight of every op (columns) on every edge (rows), across epochs.", "wide scroll") }}</div>
{% else %}{{ na("architecture weights (search/alphas.jsonl) not available") }}{% endfor %}
{% if search.slider %}
<h3>Weights by epoch</h3>
<div class="slider"><label for="alpha-epoch">epoch <b id="alpha-epoch-label"></b></label>
<input type="range" id="alpha-epoch" min="0" value="0" step="1"></div>
<p class="na">Colours span the smallest to the largest weight of the search; outlined: the strongest op of each edge.</p>
{% for t in ["normal", "reduce"] %}<h3>{{ "normal" if t == "normal" else "reduction" }} cell</h3>
<div class="wrap"><table class="alpha" id="alpha-table-{{ t }}"></table></div>
{% endfor %}
<script type="application/json" id="alpha-data">{{ search.slider }}</script>
<script>{{ slider_js }}</script>
{% endif %}
{% elif search.kind == "multi-trial" %}
<p>{{ search.trial_counts }}</p>
<div class="figs">{{ fig(search.trials_plot, "Objective of every trial and the best so far.", "wide") }}</div>
<h3>Parameter importances</h3>
{% if search.importances %}<div class="figs">{{ fig(search.importance_plot, search.importance_note) }}</div>
{% else %}{{ na("parameter importances not available: " ~ search.importance_note) }}{% endif %}
<h3>Trials</h3>
<div class="wrap"><table><tr><th class="num">#</th><th>state</th><th>architecture</th>
<th class="num">value</th><th class="num">val ACC</th><th class="num">val AUC</th>
<th class="num">params</th><th class="num">FLOPs</th><th class="num">latency ms</th>
<th class="num">seconds</th><th>error</th></tr>
{% for t in search.trials %}<tr><td class="num">{{ t.number }}</td><td>{{ t.state }}</td>
<td><code title="{{ t.arch_full }}">{{ t.arch }}</code></td><td class="num">{{ t.value }}</td>
<td class="num">{{ t.acc }}</td><td class="num">{{ t.auc }}</td><td class="num">{{ t.params }}</td>
<td class="num">{{ t.flops }}</td><td class="num">{{ t.latency }}</td>
<td class="num">{{ t.seconds }}</td><td>{{ t.error }}</td></tr>{% endfor %}
</table></div>
{% else %}{{ na("no search history in this run folder (search/history.jsonl or search/trials.jsonl)") }}
{% endif %}
</section>

<section id="architecture">
<h2>Architecture</h2>
{% if arch.cells %}<div class="figs">{% for title, svg, text in arch.cells %}<figure class="wide scroll">{{ svg }}
<figcaption>{{ title }}: {{ text }}</figcaption></figure>{% endfor %}</div>{% endif %}
{% if arch.description %}<p>{{ arch.description }}</p>{% endif %}
{% if arch.choices %}<div class="wrap"><table><tr><th>choice</th><th>value</th></tr>
{% for label, value in arch.choices %}<tr><td>{{ label }}</td><td><code>{{ value }}</code></td></tr>
{% endfor %}</table></div>{% endif %}
{% if arch.json %}<details><summary>architecture JSON</summary><pre>{{ arch.json }}</pre></details>
{% else %}{{ na("no architecture in this run folder (architecture.json)") }}{% endif %}
</section>

<section id="model">
<h2>Final model</h2>
<div class="cards">
<div class="card"><div class="k">parameters</div><div class="v">{{ "{:,}".format(model.params) if model.params is not none else "n/a" }}</div></div>
<div class="card"><div class="k">FLOPs per image</div><div class="v">{{ model.flops }}</div></div>
<div class="card"><div class="k">latency per image</div><div class="v">{{ model.latency }}</div>
<div class="ci">{{ model.device }}</div></div>
<div class="card"><div class="k">epochs (kept)</div><div class="v">{{ model.epochs }}</div></div>
</div>
{% if model.tta %}<p>Test-time augmentation: the final model averages its probabilities over each image and its {{ model.tta }}, the flips its training used; the latency and every metric below include it.</p>{% endif %}
{% if model.members %}<p>The final model is an ensemble: {{ model.members|length - 1 }} networks, each trained as the retraining was, whose probabilities are averaged. Each member alone, then the average:</p>
<table><thead><tr><th>network</th><th>parameters</th><th>validation AUC / ACC</th><th>test AUC / ACC</th></tr></thead><tbody>
{% for m in model.members %}<tr><td>{{ m.name }}</td><td>{{ m.params }}</td><td>{{ m.val }}</td><td>{{ m.test }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
{% if model.loss or model.accuracy %}<div class="figs">{{ fig(model.loss, "Retraining from scratch; the model of the kept epoch (best validation objective) is evaluated.") }}
{{ fig(model.accuracy) }}</div>
{% else %}{{ na("retraining history (retrain/history.jsonl) not available") }}{% endif %}
{% if model.summary %}<details><summary>layer summary</summary><pre>{{ model.summary }}</pre></details>
{% else %}{{ na("layer summary (model_summary.txt) not available") }}{% endif %}
</section>

<section id="test">
<h2>Test results</h2>
{% if metrics %}
<div class="wrap"><table><tr><th>metric</th><th class="num">test</th><th class="num">95% CI (bootstrap)</th>
<th class="num">validation</th></tr>
{% for m in metric_rows %}<tr><td>{{ m.name }}</td><td class="num">{{ num("table-test-" ~ m.key, m.test) }}</td>
<td class="num">{{ m.ci }}</td><td class="num">{{ fmt(m.val) }}</td></tr>{% endfor %}
</table></div>
<p class="na">{{ ci_note }}</p>
<div class="figs">{{ fig(test_figs.confusion) }}{{ fig(test_figs.roc) }}{{ fig(test_figs.per_class) }}</div>
{% if per_class %}{% if per_class|length > 30 %}<details><summary>per-class precision, recall
and F1 ({{ per_class|length }} classes)</summary>{% endif %}<div class="wrap"><table><tr><th>class</th><th class="num">precision</th>
<th class="num">recall</th><th class="num">F1</th><th class="num">support</th></tr>
{% for name, m in per_class %}<tr><td>{{ name }}</td><td class="num">{{ fmt(m.precision) }}</td>
<td class="num">{{ fmt(m.recall) }}</td><td class="num">{{ fmt(m.f1) }}</td>
<td class="num">{{ m.support }}</td></tr>{% endfor %}</table></div>
{% if per_class|length > 30 %}</details>{% endif %}{% endif %}
{% else %}{{ na("test metrics (metrics.json) not available: the run has not been evaluated") }}{% endif %}
</section>

<section id="run">
<h2>Run</h2>
<div class="wrap"><table><tr><th>phase</th><th>state</th><th class="num">seconds</th><th>updated</th></tr>
{% for name, p in phases %}<tr><td>{{ name }}</td><td class="state-{{ p.state }}">{{ p.state }}</td>
<td class="num">{{ fmt(p.seconds, 1) }}</td><td>{{ p.updated or "" }}</td></tr>
{% else %}<tr><td colspan="4" class="na">no status.json</td></tr>{% endfor %}</table></div>
{% if env %}<p>Device {{ env.device or "n/a" }}{% if env.cuda %} ({{ env.cuda }}){% endif %} ·
{{ env.platform or "" }} · {{ env.cpu_count or "?" }} CPUs · {{ env.torch_threads or "?" }} torch threads</p>
<div class="wrap"><table><tr>{% for k in env.versions %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for v in env.versions.values() %}<td>{{ v }}</td>{% endfor %}</tr></table></div>
{% if env.command %}<p>Command: <code>{{ env.command|join(" ") }}</code></p>{% endif %}
{% else %}{{ na("environment.json not available") }}{% endif %}
{% if config_text %}<details><summary>config.yaml</summary><pre>{{ config_text }}</pre></details>{% endif %}
{% if run.log_tail %}<details><summary>last lines of run.log</summary><pre>{{ run.log_tail|join("\\n") }}</pre></details>{% endif %}
<p class="na">Run folder: {{ run.path }}</p>
</section>
</main>
</body>
</html>
"""

SLIDER_JS = """
(function () {
  var source = document.getElementById("alpha-data");
  var slider = document.getElementById("alpha-epoch");
  if (!source || !slider) { return; }
  var d = JSON.parse(source.textContent);
  var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var vmin = Infinity, vmax = -Infinity;
  ["normal", "reduce"].forEach(function (t) {
    d[t].forEach(function (m) { m.forEach(function (r) { r.forEach(function (v) {
      vmin = Math.min(vmin, v); vmax = Math.max(vmax, v); }); }); });
  });
  var span = vmax - vmin > 1e-9 ? vmax - vmin : 1;
  function share(v) { return Math.max(0, Math.min(1, (v - vmin) / span)); }
  function colour(v) {
    var x = share(v) * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(x)), f = x - i, c = [];
    for (var k = 0; k < 3; k++) { c.push(Math.round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]))); }
    return "rgb(" + c.join(",") + ")";
  }
  var cells = {};
  ["normal", "reduce"].forEach(function (t) {
    var table = document.getElementById("alpha-table-" + t);
    var head = table.insertRow();
    head.appendChild(document.createElement("th"));
    d.ops.forEach(function (op) {
      var th = document.createElement("th"); th.textContent = op; head.appendChild(th);
    });
    cells[t] = d.edges.map(function (edge) {
      var row = table.insertRow(), th = document.createElement("th");
      th.textContent = edge; row.appendChild(th);
      return d.ops.map(function () { return row.insertCell(); });
    });
  });
  function show(i) {
    document.getElementById("alpha-epoch-label").textContent = d.epochs[i];
    ["normal", "reduce"].forEach(function (t) {
      d[t][i].forEach(function (weights, e) {
        var best = weights.indexOf(Math.max.apply(null, weights));
        weights.forEach(function (v, k) {
          var td = cells[t][e][k];
          if (!td) { return; }
          td.textContent = v.toFixed(2);
          td.title = d.edges[e] + ", " + d.ops[k] + ": " + v.toFixed(4);
          td.style.background = colour(v);
          td.style.color = share(v) > 0.6 ? "#000" : "#fff";
          td.className = k === best ? "max" : "";
        });
      });
    });
  }
  slider.max = d.epochs.length - 1;
  slider.value = d.epochs.length - 1;
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  show(d.epochs.length - 1);
})();
"""

COMPARE = MACROS + """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autonas comparison</title>
<style>{{ css }}</style>
</head>
<body>
<main>
<header class="top"><h1>autonas comparison</h1>
<p class="sub">{{ rows|length }} runs · generated {{ generated }} by autonas {{ version }}</p>
</header>
<section id="table">
<h2>Runs</h2>
<div class="wrap"><table><tr><th>run</th><th>strategy</th><th>space</th><th>dataset</th>
<th class="num">search time</th><th class="num">total time</th><th class="num">params</th>
<th class="num">FLOPs</th><th class="num">test ACC</th><th class="num">test AUC</th>
<th class="num">test loss</th><th>report</th></tr>
{% for r in rows %}<tr data-run="{{ r.name }}"><td>{{ r.name }}</td><td>{{ r.strategy }}</td>
<td>{{ r.space }}</td><td>{{ r.dataset }}</td><td class="num">{{ r.search_time }}</td>
<td class="num">{{ r.total_time }}</td>
<td class="num">{% if r.params is none %}n/a{% else %}<span class="num" data-key="params" data-value="{{ r.params }}">{{ "{:,}".format(r.params) }}</span>{% endif %}</td>
<td class="num">{{ r.flops }}</td>
<td class="num">{{ num("test-accuracy", r.acc) }}{% if r.acc_ci %}<br><span class="na">{{ r.acc_ci }}</span>{% endif %}</td>
<td class="num">{{ num("test-auc", r.auc) }}{% if r.auc_ci %}<br><span class="na">{{ r.auc_ci }}</span>{% endif %}</td>
<td class="num">{{ num("test-loss", r.loss) }}</td>
<td>{% if r.report %}<a href="{{ r.report }}">report.html</a>{% endif %}</td></tr>{% endfor %}
</table></div>
<p class="na">Intervals: 95% bootstrap percentile intervals over the test split.</p>
</section>
<section id="curves">
<h2>Curves</h2>
{% if search or retrain or roc %}<div class="figs">{{ fig(search, "Validation accuracy during the search, against search time.") }}
{{ fig(retrain, "Validation accuracy during retraining.") }}
{{ fig(roc, "Test ROC curves of the binary runs.") }}</div>
{% else %}{{ na("no search or retraining history in these runs") }}{% endif %}
</section>
</main>
</body>
</html>
"""
