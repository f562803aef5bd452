// The handprop playground's page: plain JavaScript, no build step, no CDN.
// The server trains (handprop's own code); this page asks for a few minibatch
// steps at a time and draws what comes back. Its form, its URL keys and its
// checks are built from GET api/parameters (handprop's parameter table and the
// data's settings): a new parameter appears here with no edit of this file.
"use strict";

const POS = [43, 108, 176], NEG = [221, 107, 32];  // blue > 0, orange < 0 (as TF Playground)
const CLASS_COLORS = [[43, 108, 176], [221, 107, 32], [47, 133, 90], [128, 90, 213],
                      [214, 158, 46], [184, 50, 128]];
const VIEW = ["show_test", "discretize"];  // the page's own URL keys (not run settings)
const MATH_UNITS = 8;  // units of a layer written out in the math panel

const pg = {
  id: null, running: false, busy: false, state: null, points: null, history: [],
  math: null, mathPoint: null, mathLabel: null, mathBusy: false, stage: "forward",
  renders: 0, table: null, params: {}, applied: null, notices: [], compare: null, touched: new Set(),
  lastReplyBytes: 0,
};
window.playground = pg;  // for the tests and the curious

const $ = (id) => document.getElementById(id);
const form = $("controls");

// -- messages ----------------------------------------------------------------------

function showError(message) { const b = $("error"); b.textContent = message; b.hidden = false; }
function clearError() { $("error").hidden = true; $("error").textContent = ""; }
function notify(message) {
  const b = $("notice");
  b.textContent = message; b.hidden = !message;
}

const LOST = "the server does not answer: it stopped, or this machine's network is down. "
  + "Restart it (handprop playground, on the same port) and press Reset.";

async function api(path, body, method) {
  const options = body === undefined ? {} : {
    method: method || "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error(LOST);
  }
  const text = await response.text();
  pg.lastReplyBytes = text.length;
  let data;
  try { data = JSON.parse(text); } catch (e) { data = { error: `the server answered ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `the server answered ${response.status}`);
  return data;
}

// -- the form, from the table -----------------------------------------------------

const label = (name) => name.replace(/_/g, " ");

function control(p) {
  let input;
  if (p.kind === "choice" || p.kind === "flag") {
    input = document.createElement("select");
    const choices = p.kind === "flag" ? ["false", "true"] : p.choices;
    for (const c of choices) input.add(new Option(c, c));
  } else if (p.kind === "kinds" && p.choices.length) {
    input = document.createElement("span");
    input.className = "checks";
    for (const c of p.choices) {
      const l = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = c; box.name = `${p.name}:${c}`;
      l.append(box, (p.labels && p.labels[c]) || c);
      input.append(l);
    }
  } else {
    input = document.createElement("input");
    input.type = "text";
    input.inputMode = (p.kind === "int" || p.kind === "float") ? "decimal" : "text";
    input.size = 9;
  }
  input.dataset.param = p.name;
  if (input.tagName !== "SPAN") input.name = p.name;
  return input;
}

function buildForm(info) {
  const box = $("fields");
  box.replaceChildren();
  const groups = { data: ["Data"], net: ["Net"], run: ["Training"], more: ["More settings"] };
  for (const g of Object.values(groups)) {
    const fs = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = g[0];
    fs.append(legend);
    g.push(fs);
  }
  const all = [...info.data_parameters, ...info.parameters];
  for (const p of all) {
    pg.params[p.name] = p;
    const row = document.createElement("label");
    row.className = "field" + (p.live ? " live" : "");
    row.dataset.field = p.name;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label(p.name);
    if (p.live) {
      const tag = document.createElement("small");
      tag.textContent = " live";
      tag.title = "changes while the run trains, without a reset";
      name.append(tag);
    }
    row.title = `${p.help}; ${p.describe}` + (p.live ? " (changes live)" : " (a change starts a new run)");
    const message = document.createElement("span");
    message.className = "field-error";
    row.append(name, control(p), message);
    const group = info.shown_first.includes(p.name) ? (p.part === "data" ? "data" : p.part) : "more";
    groups[group][1].append(row);
  }
  const more = document.createElement("details");
  more.append(document.createElement("summary"), groups.more[1]);
  more.firstChild.textContent = "more settings";
  box.append(groups.data[1], groups.net[1], groups.run[1], more);
}

function fieldValue(name) {
  const p = pg.params[name];
  if (p.kind === "kinds" && p.choices.length) {
    return [...form.querySelectorAll(`[name^="${name}:"]`)].filter((b) => b.checked)
      .map((b) => b.value).join(",");
  }
  return form.elements[name].value.trim();
}

function setField(name, value) {
  const p = pg.params[name];
  if (!p) return;
  if (p.kind === "kinds" && p.choices.length) {
    const chosen = String(value).split(",");
    form.querySelectorAll(`[name^="${name}:"]`).forEach((b) => { b.checked = chosen.includes(b.value); });
    return;
  }
  const el = form.elements[name];
  if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === String(value))) {
    el.add(new Option(String(value), String(value)));  // shown as given, and marked bad
  }
  el.value = String(value);
}

function formSettings() {
  const out = {};
  for (const name of Object.keys(pg.params)) out[name] = fieldValue(name);
  return out;
}

function fillForm(settings) {
  for (const [name, value] of Object.entries(settings)) setField(name, value);
}

// The table's checks, in its words: "NAME must be DESCRIBE, got 'TEXT'".
function problem(p, text, settings) {
  const bad = () => `${p.name} must be ${p.describe}, got '${text}'`;
  const t = text.trim();
  const isNone = ["", "none", "off"].includes(t.toLowerCase());
  const number = (s) => (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s.trim()) ? Number(s) : NaN);
  const inRange = (v) => !((p.low !== null && (p.low_open ? v <= p.low : v < p.low))
    || (p.high !== null && (p.high_open ? v >= p.high : v > p.high)));
  switch (p.kind) {
    case "int": case "float": {
      if (p.optional && isNone) return null;
      const v = number(t);
      if (!Number.isFinite(v)) return bad();
      if (p.off !== null && v === p.off) return null;
      if (p.kind === "int" && !Number.isInteger(v)) return bad();
      return inRange(v) ? null : bad();
    }
    case "choice":
      if (p.name === "dataset" && t.startsWith("upload-")) return null;
      return p.choices.includes(t) ? null : bad();
    case "flag": return ["true", "false"].includes(t) ? null : bad();
    case "layers": return /^\s*\d+\s*(,\s*\d+\s*)*$/.test(t) && t.split(",").every((v) => Number(v) >= 1) ? null : bad();
    case "lambdas": {
      const vs = t.split(",").map(number);
      const layers = (settings.hidden || "").split(",").length + 1;
      if (!vs.length || vs.some((v) => !Number.isFinite(v))) return bad();
      const negative = vs.find((v) => v < 0);  // the words of the server's check
      if (negative !== undefined) return `${p.name} must be a number >= 0, got ${negative}`;
      if (vs.length !== 1 && vs.length !== layers) {
        return `${p.name} must be one lambda, or one per weight matrix (${layers} for this net), got ${vs.length}`;
      }
      return null;
    }
    case "rates": {
      const vs = t.split(",").map(number);
      return vs.length <= 2 && vs.every((v) => Number.isFinite(v) && v >= 0 && v < 1) ? null : bad();
    }
    case "pair": {
      const vs = t.split(",").map(number);
      return vs.length === 2 && vs.every((v) => Number.isFinite(v) && inRange(v)) ? null : bad();
    }
    case "kinds": return p.choices.length && !t ? `${p.name} must be one or more of ${p.choices.join(", ")}` : null;
    default: return null;
  }
}

function validateForm(settings) {
  const problems = [];
  for (const [name, p] of Object.entries(pg.params)) {
    const message = problem(p, settings[name], settings);
    const row = form.querySelector(`[data-field="${name}"]`);
    row.classList.toggle("bad", Boolean(message));
    row.querySelector(".field-error").textContent = message || "";
    if (message) problems.push(message);
  }
  return problems;
}

// -- the URL ----------------------------------------------------------------------------

function urlSettings() {
  const out = {}, view = {};
  let params;
  try { params = new URLSearchParams(window.location.search); } catch (e) { return [out, view]; }
  for (let [key, value] of params) {
    if (key === "batch") key = "batch_size";  // links made before 0.3
    if (VIEW.includes(key)) view[key] = value === "true";
    else if (pg.params[key]) out[key] = value;
    else pg.notices.push(`the address has an unknown setting "${key}"; it is ignored`);
  }
  return [out, view];
}

function writeURL(settings) {
  const query = new URLSearchParams(settings);
  for (const key of VIEW) if ($(key.replace("_", "-")).checked) query.set(key, "true");
  window.history.replaceState(null, "", `${window.location.pathname}?${query}`);
}

// -- runs --------------------------------------------------------------------------------

function setNoRun(on) {
  $("no-run").hidden = !on;
  $("run").disabled = on; $("step").disabled = on;
  $("regions").classList.toggle("stale", on);
}

async function reset(note) {
  const wasRunning = pg.running;
  pause();
  const settings = formSettings();
  writeURL(settings);
  const problems = validateForm(settings);
  if (problems.length) {
    pg.id = null; clearMath(); setNoRun(true);
    showError(`${problems.join("; ")}. No run until it is fixed.`);
    return;
  }
  try {
    const r = await api("api/runs", settings);
    pg.id = r.id; pg.history = []; pg.points = r.state.points; clearMath();
    pg.applied = { ...settings };
    setNoRun(false);
    if (pg.notices.length) showError(pg.notices.splice(0).join("; "));  // shown once
    else clearError();
    notify(note || "");
    render(r.state);
    if (wasRunning) play();
  } catch (e) {
    pg.id = null; clearMath(); setNoRun(true);
    showError(`${e.message}. No run until it is fixed.`);
  }
}

// The output/loss pair follows the data set (regression targets take their
// own), unless the user chose one.
function followDataset() {
  if (pg.touched.has("output") || !pg.params.output) return;
  const ds = fieldValue("dataset"), info = pg.table.datasets[ds];
  const up = pg.uploads && pg.uploads[ds];
  const output = info ? info.output : up ? up.output : null;
  if (output) setField("output", output);
}

// A change of the form: the live settings go to the run, the others reset it.
async function changed(event) {
  const name = event && event.target && event.target.dataset.param
    || (event && event.target && event.target.name || "").split(":")[0];
  if (name) pg.touched.add(name);
  if (name === "dataset") followDataset();
  const settings = formSettings();
  writeURL(settings);
  const problems = validateForm(settings);
  if (problems.length) {
    showError(`${problems.join("; ")}. ` + (pg.id ? "Not applied: the run goes on with its "
      + "settings." : "No run until it is fixed."));
    return;
  }
  clearError();
  const diff = Object.keys(settings).filter((k) => !pg.applied || settings[k] !== pg.applied[k]);
  if (!diff.length) return;
  const live = diff.every((k) => pg.params[k].live);
  if (pg.id && live && !(pg.state && pg.state.stopped && !pg.state.stopped.startsWith("training diverged"))) {
    try {
      const changes = Object.fromEntries(diff.map((k) => [k, settings[k]]));
      const r = await api(`api/runs/${pg.id}/settings`, { changes, since: pg.history.length });
      pg.applied = { ...settings };
      const what = diff.map((k) => `${label(k)} ${settings[k]}`).join(", ");
      const later = diff.includes("batch_size") && r.state.batch ? " (the batch size from the next epoch)" : "";
      notify(`${what} from epoch ${r.state.epoch}, minibatch ${r.state.batch}${later}: the run goes on`);
      render(r.state);
      if (pg.state.stopped === "" && !pg.running && diff.length) { /* stays as it was */ }
    } catch (e) {
      showError(`${e.message}. Not applied: the run goes on with its settings.`);
    }
    return;
  }
  const why = diff.filter((k) => !pg.params[k].live).map(label);
  await reset(why.length ? `${why.join(", ")} changed: a new run started (a change of the data or `
    + "the net starts again)" : "a new run started");
}

async function advance(steps) {
  if (!pg.id || pg.busy) return;
  pg.busy = true;
  try {
    const r = await api(`api/runs/${pg.id}/step`, { steps, since: pg.history.length });
    render(r.state);
    if (r.state.stopped) pause();
  } catch (e) {
    showError(e.message);
    pause();
  } finally {
    pg.busy = false;
  }
}

async function loop() {
  while (pg.running) {
    const t0 = performance.now();
    if (pg.compare) await compareStep(); else await advance(stepsPerTick());
    const wait = Math.max(0, 30 - (performance.now() - t0));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

const stepsPerTick = () => Math.min(pg.table.limits.steps, Math.max(1, pg.state ? pg.state.n_batches : 5));

function play() {
  if (pg.compare) { pg.running = true; $("run").textContent = "Pause"; loop(); return; }
  if (!pg.id || (pg.state && pg.state.stopped)) return;
  pg.running = true;
  $("run").textContent = "Pause";
  loop();
}

function pause() {
  pg.running = false;
  $("run").textContent = "Run";
}

// -- drawing: colours, the regions, the axes -----------------------------------------

function decode(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

const lerp = (a, b, w) => a.map((c, i) => Math.round(c + (b[i] - c) * w));
const WHITE = [255, 255, 255];
const rgb = (c) => `rgb(${c.join(",")})`;

function diverging(v) {  // v in [-1, 1]: orange, white, blue
  return lerp(WHITE, v >= 0 ? POS : NEG, Math.min(1, Math.abs(v)));
}

// The colour of a region cell: byte values of the server's pictures.
function regionColor(s, i, values, conf, discrete) {
  if (s.kind === "regression") {
    let v = values[i] / 255;
    if (discrete) v = (Math.floor(v * 8) + 0.5) / 8;
    return diverging(2 * v - 1);
  }
  if (s.classes === 2) {
    const p = values[i] / 255;
    if (discrete) return lerp(WHITE, p > 0.5 ? CLASS_COLORS[1] : CLASS_COLORS[0], 0.55);
    return lerp(WHITE, p > 0.5 ? CLASS_COLORS[1] : CLASS_COLORS[0], 0.15 + 0.55 * Math.abs(2 * p - 1));
  }
  const k = s.classes, c = Math.round((values[i] / 255) * (k - 1)), p = conf[i] / 255;
  const w = discrete ? 0.55 : 0.1 + 0.6 * Math.max(0, (p - 1 / k) / (1 - 1 / k));
  return lerp(WHITE, CLASS_COLORS[c % CLASS_COLORS.length], w);
}

function pointColor(s, y) {
  if (s.kind === "regression") {
    const [lo, hi] = s.range;
    return diverging(2 * ((y - lo) / Math.max(hi - lo, 1e-12)) - 1);
  }
  return CLASS_COLORS[y % CLASS_COLORS.length];
}

function paintImage(canvas, n, color) {
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) image.data.set([...color(i), 255], 4 * i);
  const tmp = document.createElement("canvas");
  tmp.width = n; tmp.height = n;
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function drawRegions(s, canvas = $("regions"), opts = {}) {
  const ctx = canvas.getContext("2d");
  const values = decode(s.regions), conf = s.confidence ? decode(s.confidence) : null;
  const discrete = $("discretize").checked;
  paintImage(canvas, s.grid, (i) => regionColor(s, i, values, conf, discrete));
  const [x0, x1, y0, y1] = s.box;
  const px = (x) => ((x - x0) / (x1 - x0)) * canvas.width;
  const py = (y) => ((y1 - y) / (y1 - y0)) * canvas.height;
  const points = opts.points || pg.points;
  const r = opts.small ? 2.2 : 3.4;
  const draw = (set, style) => set.X.forEach(([x, y], i) => {
    const c = rgb(pointColor(s, set.y[i]));
    ctx.beginPath();
    if (style === "test") ctx.rect(px(x) - r, py(y) - r, 2 * r, 2 * r);
    else ctx.arc(px(x), py(y), r, 0, 2 * Math.PI);
    if (style === "valid") { ctx.lineWidth = 2; ctx.strokeStyle = c; ctx.stroke(); return; }
    ctx.fillStyle = c; ctx.fill();
    ctx.lineWidth = style === "test" ? 1.2 : 0.8;
    ctx.strokeStyle = style === "test" ? "#222" : "white"; ctx.stroke();
  });
  draw(points.train, "train");
  draw(points.valid, "valid");
  if ($("show-test").checked) draw(points.test, "test");
  if (opts.small) return;
  const b = s.last_batch;  // the minibatch just trained, ringed
  if (b && b.indices && !pg.running) {
    ctx.lineWidth = 2; ctx.strokeStyle = "#111";
    for (const i of b.indices) {
      const [x, y] = points.train.X[i];
      ctx.beginPath(); ctx.arc(px(x), py(y), r + 3, 0, 2 * Math.PI); ctx.stroke();
    }
  }
  if (pg.math) {
    const [mx, my] = pg.math.x;
    ctx.beginPath(); ctx.arc(px(mx), py(my), 7, 0, 2 * Math.PI);
    ctx.lineWidth = 3; ctx.strokeStyle = "black"; ctx.stroke();
    ctx.lineWidth = 1.5; ctx.strokeStyle = "white"; ctx.stroke();
  }
}

function niceTicks(lo, hi, n) {
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function drawAxes(s) {
  const [x0, x1, y0, y1] = s.box;
  const xa = $("x-axis"), ya = $("y-axis");
  let ctx = xa.getContext("2d");
  ctx.clearRect(0, 0, xa.width, xa.height);
  ctx.fillStyle = "#444"; ctx.strokeStyle = "#888"; ctx.font = "10px sans-serif"; ctx.textAlign = "center";
  for (const t of niceTicks(x0, x1, 6)) {
    const x = ((t - x0) / (x1 - x0)) * xa.width;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, 4); ctx.stroke();
    ctx.fillText(String(t), Math.min(Math.max(x, 8), xa.width - 8), 14);
  }
  ctx.textAlign = "right"; ctx.fillText("x₁", xa.width - 2, 21);
  ctx = ya.getContext("2d");
  ctx.clearRect(0, 0, ya.width, ya.height);
  ctx.fillStyle = "#444"; ctx.strokeStyle = "#888"; ctx.font = "10px sans-serif"; ctx.textAlign = "right";
  for (const t of niceTicks(y0, y1, 6)) {
    const y = ((y1 - t) / (y1 - y0)) * ya.height;
    ctx.beginPath(); ctx.moveTo(ya.width - 4, y); ctx.lineTo(ya.width, y); ctx.stroke();
    ctx.fillText(String(t), ya.width - 6, Math.min(Math.max(y + 3, 9), ya.height - 2));
  }
  ctx.textAlign = "left"; ctx.fillText("x₂", 1, 9);
}

function drawColorbar(s) {
  const c = $("colorbar"), ctx = c.getContext("2d"), w = c.width - 20;
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#333";
  const discrete = $("discretize").checked;
  if (s.kind === "classes" && s.classes > 2) {
    const each = w / s.classes;
    for (let k = 0; k < s.classes; k++) {
      for (let j = 0; j < 20; j++) {  // the class's colour, by its probability
        const p = 1 / s.classes + (j / 19) * (1 - 1 / s.classes);
        ctx.fillStyle = rgb(lerp(WHITE, CLASS_COLORS[k], discrete ? 0.55 : 0.1 + 0.6 * (p - 1 / s.classes) / (1 - 1 / s.classes)));
        ctx.fillRect(10 + k * each + (j * (each - 6)) / 20, 2, (each - 6) / 20 + 1, 14);
      }
      ctx.fillStyle = "#333"; ctx.fillText(`class ${k}`, 10 + k * each, 30);
    }
    $("legend").textContent = "Each class its colour, deeper where the net is surer (its probability); "
      + "filled: train, ringed: validation, squares: test.";
    return;
  }
  for (let i = 0; i < w; i++) {
    const v = i / (w - 1);
    let col;
    if (s.kind === "regression") col = diverging(2 * (discrete ? (Math.floor(v * 8) + 0.5) / 8 : v) - 1);
    else col = discrete ? lerp(WHITE, v > 0.5 ? CLASS_COLORS[1] : CLASS_COLORS[0], 0.55)
      : lerp(WHITE, v > 0.5 ? CLASS_COLORS[1] : CLASS_COLORS[0], 0.15 + 0.55 * Math.abs(2 * v - 1));
    ctx.fillStyle = rgb(col); ctx.fillRect(10 + i, 2, 1, 14);
  }
  ctx.fillStyle = "#333";
  const [lo, hi] = s.kind === "regression" ? s.range : [0, 1];
  ctx.textAlign = "left"; ctx.fillText(fmt(lo), 10, 30);
  ctx.textAlign = "center"; ctx.fillText(s.kind === "regression" ? "prediction and target" : "P(class 1)", 10 + w / 2, 30);
  ctx.textAlign = "right"; ctx.fillText(fmt(hi), 10 + w, 30);
  $("legend").textContent = s.kind === "regression"
    ? "The net's prediction over the plane; each point coloured by its target on the same scale "
      + "(filled: train, ringed: validation, squares: test)."
    : "Shaded by the probability of class 1 (blue: class 0, orange: class 1); filled: train, "
      + "ringed: validation, squares: test.";
}

// -- the learning curves ----------------------------------------------------------------

function drawCurves(hist, canvas = $("curves"), opts = {}) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  if (!hist.length) return;
  const regression = pg.state && pg.state.kind === "regression";
  const last = Math.max(1, hist[hist.length - 1].epoch);
  const losses = hist.flatMap((r) => [r.train_loss, r.valid_loss, r.test_loss]).filter(Number.isFinite);
  const top = Math.max(regression ? 0.05 : 1, Math.min(Math.max(0.1, ...losses), 3));
  ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
  ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
  ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
  ctx.fillText("0", pad - 10, h - pad + 4);
  ctx.fillText(top.toFixed(regression ? 2 : 1), 2, 12);
  ctx.fillText("epoch", pad, h - 8); ctx.textAlign = "right"; ctx.fillText(String(last), w - 4, h - 8);
  ctx.textAlign = "left";
  const x = (e) => pad + (e / last) * (w - pad - 4);
  const y = (v) => 4 + (1 - Math.min(Math.max(v, 0), top) / top) * (h - pad - 8);
  const every = Math.max(1, Math.floor(hist.length / (2 * w)));  // at most two points a pixel
  const series = [["train", "#333"], ["valid", "#2f855a"], ["test", "#b83280"]];
  const kinds = regression ? [["loss", [4, 3]]] : [["error", []], ["loss", [4, 3]]];
  for (const [name, color] of series) {
    for (const [kind, dash] of kinds) {
      ctx.beginPath(); ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.lineWidth = 1.5;
      let first = true;
      for (let i = 0; i < hist.length; i += (i + every < hist.length ? every : Math.max(1, hist.length - 1 - i))) {
        const r = hist[i], v = r[`${name}_${kind}`];
        if (!Number.isFinite(v)) continue;
        if (first) { ctx.moveTo(x(r.epoch), y(v)); first = false; } else ctx.lineTo(x(r.epoch), y(v));
      }
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
  const best = opts.best !== undefined ? opts.best : pg.state && pg.state.best_epoch;
  if (best) {
    ctx.strokeStyle = "#2f855a"; ctx.setLineDash([2, 2]);
    ctx.beginPath(); ctx.moveTo(x(best), 4); ctx.lineTo(x(best), h - pad); ctx.stroke();
    ctx.setLineDash([]); ctx.fillStyle = "#2f855a"; ctx.fillText(`best ${best}`, Math.min(x(best) + 2, w - 50), 14);
  }
  for (const c of (opts.changes || (pg.state ? pg.state.changes : []))) {
    ctx.fillStyle = "#805ad5"; ctx.fillRect(x(c.epoch) - 1, h - pad - 6, 2, 6);
  }
}

// -- the network, drawn ---------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.append(el);
  return el;
}

function unitImage(layer, j, n) {
  const values = decode(layer.images[j]);
  const c = document.createElement("canvas");
  c.width = n; c.height = n;
  const ctx = c.getContext("2d"), image = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const v = values[i] / 255;
    image.data.set([...(layer.signed ? diverging(2 * v - 1) : lerp(WHITE, POS, v)), 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  return c.toDataURL();
}

// The name of layer l's units in the derivation: x, h¹ ... h^L, o.
function layerName(l, L) { return l === 0 ? "x" : l === L + 1 ? "o" : `h${l}`; }

function drawNetwork(s) {
  const net = s.network, box = $("network");
  const layers = net.layers, L = layers.length - 2;
  const width = Math.max(280, Math.min(box.clientWidth || 600, 900));
  const cols = layers.length, colW = width / cols;
  const size = Math.max(22, Math.min(40, colW * 0.42));
  const most = Math.max(...layers.map((l) => l.shown));
  const rowH = size + 12, top = 26;
  const height = top + most * rowH + 26;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "network-svg" });
  const pos = layers.map((layer, l) => {
    const x = colW * l + colW / 2;
    const y0 = top + ((most - layer.shown) * rowH) / 2;
    return Array.from({ length: layer.shown }, (_, j) => [x, y0 + j * rowH + size / 2]);
  });
  const edges = svg("g", { class: "edges" }, root);
  for (let l = 1; l < layers.length; l++) {
    const W = net.weights[`W${l}`];
    const big = Math.max(1e-12, ...W.flat().map(Math.abs));
    W.forEach((row, i) => row.forEach((w, j) => {
      const [xa, ya] = pos[l - 1][j], [xb, yb] = pos[l][i];
      svg("line", {
        x1: xa + size / 2, y1: ya, x2: xb - size / 2, y2: yb, class: "edge",
        stroke: rgb(w >= 0 ? POS : NEG), "stroke-width": (0.4 + 4 * Math.abs(w) / big).toFixed(2),
        "data-name": `W${l}`, "data-i": i, "data-j": j, "data-value": w,
      }, edges);
    }));
  }
  layers.forEach((layer, l) => {
    const g = svg("g", { class: "layer" }, root);
    const name = l === 0 ? "inputs" : l === L + 1 ? "outputs" : `layer ${l}`;
    svg("text", { x: pos[l][0][0], y: 12, "text-anchor": "middle", class: "layer-name" }, g)
      .textContent = `${name} (${layer.units})`;
    pos[l].forEach(([x, y], j) => {
      const node = svg("g", { class: "unit", "data-layer": l, "data-unit": j }, g);
      svg("image", { x: x - size / 2, y: y - size / 2, width: size, height: size,
        href: unitImage(layer, j, net.grid), preserveAspectRatio: "none" }, node);
      svg("rect", { x: x - size / 2, y: y - size / 2, width: size, height: size, class: "frame" }, node);
      const unitName = l === 0 ? net.inputs[j] : `${layerName(l, L)}[${j}]`;
      node.dataset.title = unitName;
      if (l === 0) {  // the feature's name, left of its picture
        svg("text", { x: x - size / 2 - 3, y: y + 3, "text-anchor": "end", class: "input-name" }, node)
          .textContent = unitName;
      }
      if (l > 0) {
        const b = net.weights[`b${l}`][j];
        svg("rect", { x: x - size / 2 - 7, y: y + size / 2 - 6, width: 6, height: 6, class: "bias",
          fill: rgb(diverging(Math.max(-1, Math.min(1, b)))), "data-name": `b${l}`, "data-i": j,
          "data-value": b }, node);
      }
      svg("text", { x, y: y + size / 2 + 10, "text-anchor": "middle", class: "value" }, node);
    });
    if (layer.units > layer.shown) {
      svg("text", { x: pos[l][0][0], y: height - 6, "text-anchor": "middle", class: "more" }, g)
        .textContent = `+${layer.units - layer.shown} more units`;
    }
  });
  box.replaceChildren(root);
  const scales = layers.map((l, i) => `${i === 0 ? "inputs" : i === L + 1 ? "outputs" : `layer ${i}`}: ${l.signed ? "±" : ""}${fmt(l.scale)}`);
  $("network-note").textContent = `scale of each layer's pictures: ${scales.join(", ")}`;
  drawUnitScale();
  if (pg.math) lightUp();
  refreshTooltip();
}

function drawUnitScale() {
  const c = $("unit-scale"), ctx = c.getContext("2d"), w = c.width - 20;
  ctx.clearRect(0, 0, c.width, c.height);
  for (let i = 0; i < w; i++) { ctx.fillStyle = rgb(diverging((2 * i) / (w - 1) - 1)); ctx.fillRect(10 + i, 2, 1, 12); }
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  ctx.textAlign = "left"; ctx.fillText("−scale", 10, 27);
  ctx.textAlign = "center"; ctx.fillText("0", 10 + w / 2, 27);
  ctx.textAlign = "right"; ctx.fillText("+scale", 10 + w, 27);
}

// Hovering a weight, a bias or a unit: its value, updated live.
let hovered = null;  // the selector of what is hovered
function describeHovered(el) {
  if (!el || !el.isConnected) return "";
  const name = el.dataset.name;
  if (el.classList.contains("edge") || el.classList.contains("bias")) {
    const v = Number(el.dataset.value);
    const at = name.startsWith("W") ? `${name}[${el.dataset.i}, ${el.dataset.j}]` : `${name}[${el.dataset.i}]`;
    let text = `${at} = ${v.toPrecision(6)}`;
    if (el.dataset.grad !== undefined) text += `; this point's ∂E/∂${at} = ${Number(el.dataset.grad).toPrecision(6)}`;
    return text;
  }
  const unit = el.closest(".unit");
  if (unit) {
    const v = unit.querySelector(".value").dataset.value;
    return unit.dataset.title + (v !== undefined ? ` = ${Number(v).toPrecision(6)} (${unit.querySelector(".value").dataset.what})` : "");
  }
  return "";
}

// The hovered element's selector: the drawing is made anew at each render.
function selectorOf(el) {
  if (el.classList.contains("edge")) {
    return `.edge[data-name="${el.dataset.name}"][data-i="${el.dataset.i}"][data-j="${el.dataset.j}"]`;
  }
  if (el.classList.contains("bias")) return `.bias[data-name="${el.dataset.name}"][data-i="${el.dataset.i}"]`;
  const unit = el.closest(".unit");
  return `.unit[data-layer="${unit.dataset.layer}"][data-unit="${unit.dataset.unit}"] image`;
}

function refreshTooltip() {
  if (!hovered) return;
  hovered = $("network").querySelector(hovered) ? hovered : null;
  const t = $("tooltip");
  const text = hovered ? describeHovered($("network").querySelector(hovered)) : "";
  t.textContent = text; t.hidden = !text;
}

function onHover(event) {
  const el = event.target.closest(".edge, .bias, .unit");
  hovered = el ? selectorOf(el.classList.contains("unit") ? el.querySelector("image") : el) : null;
  const t = $("tooltip");
  const text = hovered ? describeHovered($("network").querySelector(hovered)) : "";
  t.textContent = text; t.hidden = !text;
  t.style.left = `${Math.min(event.pageX + 12, document.documentElement.clientWidth - 260)}px`;
  t.style.top = `${event.pageY + 12}px`;
}

// -- backprop, shown on the drawing --------------------------------------------------------

// The stages: forward lights layers 0 .. L+1 (x, then h_s, then o_s);
// backward the deltas, from the output's down to the first hidden layer's;
// gradients colours each weight by this point's gradient.
function stagesOf(m) {
  const L = m.layers.length, out = [];
  for (let l = 0; l <= L + 1; l++) out.push(["forward", l]);
  for (let l = L + 1; l >= 1; l--) out.push(["backward", l]);
  out.push(["gradients", null]);
  return out;
}

function lightUp() {
  const m = pg.math, root = $("network");
  if (!m || !pg.state) return;
  const L = m.layers.length;
  const [stage, upto] = pg.stageStep === undefined || pg.stageStep === null
    ? [pg.stage, null] : stagesOf(m)[pg.stageStep];
  const valuesOf = (l) => (l === 0 ? m.input : l === L + 1 ? m.o_s : m.layers[l - 1].h_s);
  const deltaOf = (l) => (l === L + 1 ? m.delta_o : m.layers[l - 1].delta);
  root.querySelectorAll(".unit").forEach((node) => {
    const l = Number(node.dataset.layer), j = Number(node.dataset.unit);
    const text = node.querySelector(".value"), frame = node.querySelector(".frame");
    let v = null, what = "";
    if (stage === "forward" && (upto === null || l <= upto)) {
      v = valuesOf(l)[j]; what = l === 0 ? "input" : l === L + 1 ? "o_s" : "h_s";
    } else if (stage === "backward" && l >= 1 && (upto === null || l >= upto)) {
      v = deltaOf(l)[j]; what = "δ";
    }
    frame.classList.toggle("lit", v !== null && (upto === null || l === upto));
    if (v === null || v === undefined) { text.textContent = ""; delete text.dataset.value; return; }
    text.textContent = fmtShort(v);
    text.dataset.value = v; text.dataset.what = what;
    text.setAttribute("fill", what === "δ" ? rgb(v >= 0 ? POS : NEG) : "#222");
  });
  root.querySelectorAll(".edge, .bias").forEach((el) => {
    const g = m.grads[el.dataset.name];
    const i = Number(el.dataset.i), j = Number(el.dataset.j);
    const value = el.classList.contains("edge") ? g[i][j] : g[i];
    el.dataset.grad = value;
    el.classList.toggle("dim", stage === "gradients" ? false : stage === "backward");
    if (stage === "gradients" && el.classList.contains("edge")) {
      el.setAttribute("stroke", rgb(-value >= 0 ? POS : NEG));
    }
  });
  if (stage === "gradients") {  // thickness by |gradient|, per matrix
    const byName = {};
    root.querySelectorAll(".edge").forEach((el) => {
      byName[el.dataset.name] = Math.max(byName[el.dataset.name] || 1e-12, Math.abs(el.dataset.grad));
    });
    root.querySelectorAll(".edge").forEach((el) => {
      el.setAttribute("stroke-width", (0.4 + 4 * Math.abs(el.dataset.grad) / byName[el.dataset.name]).toFixed(2));
    });
  }
  const notes = {
    forward: "forward: each unit's output for this point (inputs x, h_s = g(h_a), then o_s)",
    backward: "backward: each unit's δ, from δ_o = o_s − t down to the first layer (blue > 0, orange < 0)",
    gradients: "gradients: each weight coloured by −∂E/∂W (the way a step moves it), thicker when larger",
  };
  $("stage-note").textContent = notes[stage] + (upto !== null && stage !== "gradients"
    ? `: ${stage === "forward" ? "layer" : "δ of layer"} ${upto}` : "");
  document.querySelectorAll("#stages [data-stage]").forEach((b) => b.classList.toggle("on", b.dataset.stage === stage));
}

function setStage(stage) { pg.stage = stage; pg.stageStep = null; lightUp(); }

async function animateStages() {
  if (!pg.math) return;
  const stages = stagesOf(pg.math);
  for (let i = 0; i < stages.length && pg.math; i++) {
    pg.stageStep = i; pg.stage = stages[i][0]; lightUp();
    await new Promise((r) => setTimeout(r, 700));
  }
  pg.stageStep = null; lightUp();
}

// -- the math panel ---------------------------------------------------------------------------

const fmt = (v) => (v === null || v === undefined ? "—" : (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)) ? v.toExponential(3) : v.toFixed(4));
const fmtShort = (v) => (Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toFixed(2));

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function vec(values, name) {  // a vector, summarized past MATH_UNITS entries
  const shown = values.slice(0, MATH_UNITS).map(fmt).join(", ");
  const more = values.length > MATH_UNITS ? `, … (${values.length - MATH_UNITS} more in ${name})` : "";
  return `(${shown}${more})`;
}

// "W[j,0] x_0 + W[j,1] x_1 + ... + b[j]" with this point's numbers.
function substituted(row, inputs, bias) {
  const terms = row.slice(0, 4).map((w, i) => `(${fmt(w)})(${fmt(inputs[i])})`);
  const more = row.length > 4 ? ` + … ${row.length - 4} more terms` : "";
  return `${terms.join(" + ")}${more} + (${fmt(bias)})`;
}

function renderMath(m) {
  pg.math = m;
  const body = $("math-body"), L = m.layers.length, S = m.shapes;
  body.replaceChildren();
  $("math-point").textContent = `point (${m.x.map(fmt).join(", ")})`
    + (m.nearest ? `, with the label of the nearest data point (${m.nearest.map(fmt).join(", ")})` : "")
    + ` · at epoch ${m.epoch}, minibatch ${m.batch}`;
  const sel = $("math-label"), regression = !pg.state || pg.state.kind === "regression";
  sel.hidden = regression; $("math-target").hidden = !regression;
  if (!regression) {
    const k = Math.max(2, pg.state.classes);
    if (sel.options.length !== k) { sel.replaceChildren(); for (let c = 0; c < k; c++) sel.add(new Option(`class ${c}`, c)); }
    sel.value = String(m.label);
  } else if (document.activeElement !== $("math-target")) $("math-target").value = String(m.label);

  const sec = (title) => { const d = el("div", undefined, "math-step"); d.append(el("h3", title)); body.append(d); return d; };
  const line = (parent, text, cls) => parent.append(el("p", text, cls || "formula"));
  let d = sec("Forward pass");
  line(d, `x = φ(point) = ${vec(m.input, "x")}: the features ${m.features.join(", ")}; x: ${m.input.length}`);
  let inputs = m.input;
  for (let l = 1; l <= L + 1; l++) {
    const isOut = l === L + 1, W = `W${l}`, b = `b${l}`;
    const a = isOut ? "o_a" : `h_a${l}`, s = isOut ? "o_s" : `h_s${l}`;
    const prev = l === 1 ? "x" : `h_s${l - 1}`;
    line(d, `${a} = ${W} ${prev} + ${b}    (${W}: ${S[W][0]} × ${S[W][1]}, ${b}: ${S[b][0]})`, "formula head");
    const av = isOut ? m.o_a : m.layers[l - 1].h_a, sv = isOut ? m.o_s : m.layers[l - 1].h_s;
    const t = el("table");
    const head = t.insertRow();
    for (const h of ["unit j", `${a}[j] = Σ_i ${W}[j,i] ${prev}[i] + ${b}[j]`, `${a}[j]`, `${s}[j] = ${isOut ? m.output : m.activation}(…)`]) head.append(el("th", h));
    av.slice(0, MATH_UNITS).forEach((v, j) => {
      const r = t.insertRow();
      r.insertCell().textContent = j;
      r.insertCell().textContent = m.params[W][j] ? substituted(m.params[W][j], inputs, m.params[b][j]) : "…";
      r.insertCell().textContent = fmt(v);
      r.insertCell().textContent = fmt(sv[j]);
    });
    d.append(t);
    if (av.length > MATH_UNITS) line(d, `… and ${av.length - MATH_UNITS} more units (their values are in the API's reply)`, "legend");
    inputs = sv;
  }
  const lossP = el("p", "", "formula head");
  lossP.innerHTML = `E = ${m.loss_name} = <b id="math-loss">${m.loss.toPrecision(8)}</b>`
    + ` (target t = ${vec(m.target, "t")})`;
  d.append(lossP);

  d = sec("Backward pass");
  line(d, `δ_o = o_s − t = ${vec(m.delta_o, "δ_o")}    (δ_o: ${m.delta_o.length})`, "formula head");
  for (let l = L; l >= 1; l--) {
    const delta = m.layers[l - 1].delta;
    line(d, `δ${l} = (W${l + 1}ᵀ δ${l === L ? "_o" : l + 1}) ⊙ g′(h_a${l}) = ${vec(delta, `δ${l}`)}    (δ${l}: ${delta.length})`, "formula head");
  }
  d = sec("Gradients of this point, and their finite-difference check");
  line(d, "∂E/∂W_l = δ_l h_s(l−1)ᵀ (h_s0 = x), ∂E/∂b_l = δ_l; each checked by a five-point "
    + "central difference (ε = 1e-3) on the server as you click", "legend");
  const t = el("table");
  const head = t.insertRow();
  for (const h of ["parameter", "shape", "this point's gradient (first row)", "largest relative error",
    "largest absolute error"]) head.append(el("th", h));
  for (const [name, g] of Object.entries(m.grads)) {
    const r = t.insertRow();
    r.insertCell().textContent = name;
    r.insertCell().textContent = m.shapes[name].join(" × ");
    const row = Array.isArray(g[0]) ? g[0] : g;
    const rows = Array.isArray(g[0]) ? ` (row 0 of ${g.length})` : "";
    r.insertCell().textContent = vec(row, name) + rows;
    const rel = m.gradcheck.per_param[name], abs = m.gradcheck.abs_error[name];
    const ok = rel <= m.gradcheck.tol || abs <= m.gradcheck.abs_tol;
    for (const v of [rel, abs]) {
      const c = r.insertCell();
      c.textContent = v === undefined || v === null ? "—" : v.toExponential(2);
      c.className = "check";
    }
    r.cells[r.cells.length - 1].textContent += ok ? " ✓" : " ✗";
  }
  d.append(t);
  const check = el("p", "", "formula head");
  check.innerHTML = `Largest relative error over all parameters: <b id="math-check">${m.gradcheck.max_rel_error.toExponential(2)}</b> `
    + (m.gradcheck.passed ? "— every entry passed" : "— FAILED")
    + (m.gradcheck.kinks ? ` (${m.gradcheck.kinks} entries at a kink of the activation left out)` : "");
  d.append(check);
  line(d, `An entry passes with a relative error below ${m.gradcheck.tol.toExponential(0)}, or an absolute `
    + `one below ${m.gradcheck.abs_tol.toExponential(0)}: near 0 (a saturated unit) the finite difference's `
    + "own error, about 1e-12, dominates the relative error. No penalty and no dropout here: the math is "
    + "the data loss of this one point.", "legend");
  $("math").hidden = false;
  $("stages").hidden = false;
  if (pg.state) { drawRegions(pg.state); lightUp(); }
}

function clearMath() {
  pg.math = null; pg.mathPoint = null; pg.mathLabel = null; pg.stageStep = null;
  $("math").hidden = true; $("stages").hidden = true;
  $("math-body").replaceChildren();
  $("network").querySelectorAll(".value").forEach((t) => { t.textContent = ""; });
}

async function requestMath() {
  if (!pg.id || !pg.mathPoint || pg.mathBusy) return;
  pg.mathBusy = true;
  const id = pg.id;
  try {
    const m = await api(`api/runs/${id}/math`, { x: pg.mathPoint[0], y: pg.mathPoint[1], label: pg.mathLabel });
    if (id === pg.id && pg.mathPoint) renderMath(m);
  } catch (e) {
    showError(e.message);
  } finally {
    pg.mathBusy = false;
  }
}

function showMath(event) {
  if (!pg.id || !pg.state) return;
  const canvas = $("regions"), rect = canvas.getBoundingClientRect();
  const [x0, x1, y0, y1] = pg.state.box;
  let x = x0 + ((event.clientX - rect.left) / rect.width) * (x1 - x0);
  let y = y1 - ((event.clientY - rect.top) / rect.height) * (y1 - y0);
  // a click within 8 px of a data point takes that point
  let best = 8;
  for (const set of ["train", "valid", ...($("show-test").checked ? ["test"] : [])]) {
    pg.points[set].X.forEach(([px, py]) => {
      const dx = ((px - x) / (x1 - x0)) * rect.width, dy = ((py - y) / (y1 - y0)) * rect.height;
      const dist = Math.hypot(dx, dy);
      if (dist < best) { best = dist; x = px; y = py; }
    });
  }
  pg.mathPoint = [x, y]; pg.mathLabel = null;
  requestMath();
}

// -- the status line and the whole view -------------------------------------------------------

const pct = (v) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : "—");

function statusText(s, r) {
  const measure = (v) => (s.measure === "r2" ? `R² ${Number.isFinite(v) ? v.toFixed(3) : "—"}` : pct(v));
  const b = s.last_batch;
  const mb = s.batch ? ` · minibatch ${s.batch} of ${s.n_batches} of epoch ${s.epoch + 1}` : "";
  const just = b && !pg.running ? ` · just trained: minibatch ${b.batch + 1} of ${b.n_batches} (epoch ${b.epoch}, ${b.indices.length} points, ringed)` : "";
  return `epoch ${s.epoch}${mb} · train ${measure(r.train_error)} (loss ${fmt(r.train_loss)}) · `
    + `valid ${measure(r.valid_error)} · test ${measure(r.test_error)}${just}`
    + (s.stopped ? ` — ${s.stopped}` : "");
}

function render(s) {
  if (s.history_from === 0) pg.history = [];
  pg.history.length = Math.min(pg.history.length, s.history_from);
  pg.history.push(...s.history);
  if (s.points) pg.points = s.points;
  pg.state = s;
  drawRegions(s);
  drawAxes(s);
  drawColorbar(s);
  drawCurves(pg.history);
  drawNetwork(s);
  const r = pg.history[pg.history.length - 1];
  $("status").textContent = statusText(s, r);
  $("curves-legend").textContent = s.kind === "regression"
    ? "mean loss (dashed): train (black), validation (green), test (pink)"
    : "error (solid) and mean loss (dashed): train (black), validation (green), test (pink)";
  $("changes").textContent = s.changes.length ? "Changed live (purple ticks): " + s.changes.slice(-6)
    .map((c) => `${label(c.name)} ${c.value} at epoch ${c.epoch}`).join("; ") : "";
  $("command").textContent = s.command;
  for (const [link, file] of [["split-link", "split.npz"], ["data-link", "data.csv"], ["model-link", "model.npz"]]) {
    $(link).href = `api/runs/${pg.id}/${file}`;
  }
  pg.renders += 1;
  $("regions").dataset.renders = pg.renders;
  // the point stays selected as it trains: its math again, twice a second at most
  if (pg.mathPoint && !pg.mathBusy && (!pg.running || performance.now() - (pg.mathAt || 0) > 500)) {
    pg.mathAt = performance.now();
    requestMath();
  }
}

// -- presets: comparisons, trained side by side ------------------------------------------------

async function startCompare(name) {
  pause(); clearMath();
  const preset = pg.table.presets[name];
  const base = { ...pg.table.defaults, ...preset.data };
  const runs = [];
  try {
    for (const settings of preset.runs) {
      const all = { ...base, ...settings };
      const r = await api("api/runs", all);
      runs.push({ id: r.id, state: r.state, history: [...r.state.history], points: r.state.points, settings });
    }
  } catch (e) { showError(e.message); return; }
  pg.compare = { name, runs };
  fillForm(base);
  $("compare-title").textContent = `Compare: ${name}`;
  $("compare-claim").textContent = `${preset.claim}. Data: ${Object.entries(preset.data).map(([k, v]) => `${label(k)} ${v}`).join(", ")}; `
    + "the other settings are the defaults.";
  const box = $("compare-runs");
  box.replaceChildren();
  for (const run of runs) {
    const card = el("div", undefined, "card");
    card.append(el("h3", Object.entries(run.settings).map(([k, v]) => `${label(k)} ${v}`).join(" · ")));
    run.regions = el("canvas"); run.regions.width = 220; run.regions.height = 220;
    run.curves = el("canvas"); run.curves.width = 220; run.curves.height = 110;
    run.status = el("p", "", "legend");
    card.append(run.regions, run.curves, run.status);
    box.append(card);
  }
  $("compare").hidden = false;
  $("view").hidden = true;
  document.body.classList.add("comparing");
  drawCompare();
  play();
}

async function compareStep() {
  const c = pg.compare;
  for (const run of c.runs) {
    if (run.state.stopped) continue;
    try {
      const r = await api(`api/runs/${run.id}/step`, { steps: Math.min(500, run.state.n_batches), since: run.history.length });
      run.history.length = r.state.history_from;
      run.history.push(...r.state.history);
      run.state = r.state;
    } catch (e) { showError(e.message); pause(); return; }
  }
  if (pg.compare === c) drawCompare();
  if (c.runs.every((r) => r.state.stopped)) pause();
}

function drawCompare() {
  for (const run of pg.compare.runs) {
    const s = run.state, r = run.history[run.history.length - 1];
    drawRegions(s, run.regions, { points: run.points, small: true });
    drawCurves(run.history, run.curves, { best: s.best_epoch, changes: [] });
    run.status.textContent = `epoch ${s.epoch}: train ${pct(r.train_error)}, valid ${pct(r.valid_error)} `
      + `(loss ${fmt(r.valid_loss)}), test ${pct(r.test_error)}` + (s.best_epoch ? `; best valid epoch ${s.best_epoch}` : "")
      + (s.stopped ? ` — ${s.stopped}` : "");
  }
  const epochs = pg.compare.runs.map((r) => r.state.epoch);
  $("status").textContent = `comparing ${pg.compare.name}: ${pg.compare.runs.length} runs side by side, `
    + `epoch ${Math.min(...epochs)}${Math.max(...epochs) > Math.min(...epochs) ? ` to ${Math.max(...epochs)}` : ""}`
    + " (Reset or Step: back to one run)";
  pg.renders += 1;
}

function endCompare() {
  pause();
  pg.compare = null;
  $("compare").hidden = true;
  $("view").hidden = false;
  document.body.classList.remove("comparing");
  if (pg.state) render(pg.state);
}

// -- uploads -------------------------------------------------------------------------------------

async function upload(event) {
  const file = event.target.files[0];
  if (!file) return;
  try {
    const text = await file.text();
    const up = await api("api/uploads", { csv: text });
    pg.uploads = { ...(pg.uploads || {}), [up.name]: up };
    const select = form.elements.dataset;
    if (![...select.options].some((o) => o.value === up.name)) select.add(new Option(`${file.name} (${up.name})`, up.name));
    select.value = up.name;
    followDataset();
    await reset(`uploaded ${file.name}: ${up.points} points, ${up.regression ? "regression targets" : `${up.classes} classes`}; a new run started`);
  } catch (e) {
    showError(`the upload failed: ${e.message}`);
  }
  event.target.value = "";
}

// -- start ------------------------------------------------------------------------------------------

async function copyCommand() {
  const text = $("command").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {  // no clipboard permission (plain http, an old browser): select it
    const range = document.createRange();
    range.selectNodeContents($("command"));
    const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    document.execCommand("copy");
  }
  $("copy").textContent = "copied";
  setTimeout(() => { $("copy").textContent = "copy"; }, 1500);
}

async function start() {
  try {
    const [info, presets] = await Promise.all([api("api/parameters"), api("api/presets")]);
    pg.table = { ...info, presets: presets.presets, order: presets.order, defaults: presets.defaults };
  } catch (e) {
    showError(e.message);
    return;
  }
  buildForm(pg.table);
  fillForm(pg.table.defaults);
  const [fromURL, view] = urlSettings();
  fillForm(fromURL);
  for (const name of Object.keys(fromURL)) pg.touched.add(name);
  if (pg.params.dataset && pg.table.datasets[fieldValue("dataset")]) followDataset();
  $("show-test").checked = Boolean(view.show_test);
  $("discretize").checked = Boolean(view.discretize);
  for (const name of pg.table.order) {  // JSON objects come back sorted: the order is apart
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.title = pg.table.presets[name].claim;
    b.addEventListener("click", () => startCompare(name));
    $("presets").append(b);
  }
  $("run").addEventListener("click", () => (pg.running ? pause() : play()));
  $("step").addEventListener("click", () => { pause(); if (pg.compare) endCompare(); advance(1); });
  $("reset").addEventListener("click", () => { if (pg.compare) endCompare(); reset(); });
  $("regions").addEventListener("click", showMath);
  $("compare-close").addEventListener("click", endCompare);
  $("math-close").addEventListener("click", () => { clearMath(); if (pg.state) drawRegions(pg.state); });
  $("math-label").addEventListener("change", () => { pg.mathLabel = Number($("math-label").value); requestMath(); });
  $("math-target").addEventListener("change", () => { pg.mathLabel = Number($("math-target").value); requestMath(); });
  document.querySelectorAll("#stages [data-stage]").forEach((b) => b.addEventListener("click", () => setStage(b.dataset.stage)));
  $("animate").addEventListener("click", animateStages);
  $("network").addEventListener("mousemove", onHover);
  $("network").addEventListener("mouseleave", () => { hovered = null; $("tooltip").hidden = true; });
  for (const id of ["show-test", "discretize"]) {
    $(id).addEventListener("change", () => {
      writeURL(formSettings());
      if (pg.state) { drawRegions(pg.state); drawColorbar(pg.state); }
      if (pg.compare) drawCompare();
    });
  }
  $("copy").addEventListener("click", copyCommand);
  $("upload").addEventListener("change", upload);
  form.addEventListener("change", (e) => { if (e.target.id !== "upload") { if (pg.compare) endCompare(); changed(e); } });
  form.addEventListener("submit", (e) => { e.preventDefault(); changed(); });
  let width = window.innerWidth;
  window.addEventListener("resize", () => {
    if (window.innerWidth !== width && pg.state) { width = window.innerWidth; drawNetwork(pg.state); }
  });
  await reset();
}

start();
