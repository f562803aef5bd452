// The handprop playground's page: plain JavaScript, no build step, no CDN.
// The server trains (handprop's own code); this page asks for a few minibatch
// steps at a time and draws what comes back. Its settings live in the URL.
"use strict";

const FIELDS = ["dataset", "points", "noise", "valid", "hidden", "activation", "l1", "l2",
                "lr", "momentum", "batch_size", "patience", "seed"];
const COLORS = { c0: [43, 108, 176], c1: [221, 107, 32] };
const STEPS_PER_TICK = 5;

const pg = { id: null, running: false, busy: false, state: null, math: null, renders: 0,
             defaults: null, presets: null, notices: [] };
window.playground = pg;  // for the tests and the curious

const $ = (id) => document.getElementById(id);
const form = $("controls");

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `the server answered ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `the server answered ${response.status}`);
  return data;
}

// -- settings: the form and the URL ---------------------------------------------

function formSettings() {
  const out = {};
  for (const name of FIELDS) out[name] = form.elements[name].value.trim();
  return out;
}

function fillForm(settings) {
  for (const name of FIELDS) {
    if (settings[name] !== undefined) form.elements[name].value = settings[name];
  }
}

function urlSettings() {
  let params;
  try {
    params = new URLSearchParams(window.location.search);
  } catch (e) {
    pg.notices.push("the address could not be read; the defaults are used");
    return {};
  }
  const out = {};
  for (const [key, value] of params) {
    if (FIELDS.includes(key)) out[key] = value;
    else pg.notices.push(`the address has an unknown setting "${key}"; it is ignored`);
  }
  return out;
}

function writeURL(settings) {
  const query = new URLSearchParams(settings).toString();
  window.history.replaceState(null, "", `${window.location.pathname}?${query}`);
}

// -- running ---------------------------------------------------------------------

async function reset() {
  pause();
  const settings = formSettings();
  writeURL(settings);
  try {
    const r = await api("api/runs", settings);
    pg.id = r.id;
    if (pg.notices.length) showError(pg.notices.splice(0).join("; "));  // shown once
    else clearError();
    render(r.state);
  } catch (e) {
    pg.id = null;
    showError(e.message);
  }
}

async function advance(steps) {
  if (!pg.id || pg.busy) return;
  pg.busy = true;
  try {
    const r = await api(`api/runs/${pg.id}/step`, { steps });
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
    await advance(STEPS_PER_TICK);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}

function play() {
  if (!pg.id || (pg.state && pg.state.stopped)) return;
  pg.running = true;
  $("run").textContent = "Pause";
  loop();
}

function pause() {
  pg.running = false;
  $("run").textContent = "Run";
}

// -- drawing -------------------------------------------------------------------------

function decode(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function mix(p) {  // p in [0, 1]: the probability of class 1, as a color
  const a = COLORS.c0, b = COLORS.c1, w = 0.35 + 0.65 * Math.abs(2 * p - 1);
  const base = p > 0.5 ? b : a;
  return base.map((c) => Math.round(255 - w * (255 - c) * 0.55));
}

function drawRegions(s) {
  const canvas = $("regions"), ctx = canvas.getContext("2d");
  const n = s.grid, probs = decode(s.regions);
  const image = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const [r, g, b] = mix(probs[i] / 255);
    image.data.set([r, g, b, 255], 4 * i);
  }
  const tmp = document.createElement("canvas");
  tmp.width = n; tmp.height = n;
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  const [x0, x1, y0, y1] = s.box;
  const px = (x) => ((x - x0) / (x1 - x0)) * canvas.width;
  const py = (y) => ((y1 - y) / (y1 - y0)) * canvas.height;
  const points = (set, filled) => {
    set.X.forEach(([x, y], i) => {
      const c = set.y[i] ? COLORS.c1 : COLORS.c0;
      ctx.beginPath();
      ctx.arc(px(x), py(y), filled ? 3.2 : 3.6, 0, 2 * Math.PI);
      ctx.strokeStyle = "white";
      ctx.fillStyle = `rgb(${c.join(",")})`;
      if (filled) { ctx.fill(); ctx.lineWidth = 0.8; ctx.stroke(); }
      else { ctx.lineWidth = 2; ctx.strokeStyle = `rgb(${c.join(",")})`; ctx.stroke(); }
    });
  };
  points(s.train, true);
  points(s.valid, false);
  if (pg.math) {
    const [mx, my] = pg.math.x;
    ctx.beginPath();
    ctx.arc(px(mx), py(my), 6, 0, 2 * Math.PI);
    ctx.lineWidth = 2; ctx.strokeStyle = "black"; ctx.stroke();
  }
}

function drawCurves(s) {
  const canvas = $("curves"), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const hist = s.history, last = Math.max(1, hist[hist.length - 1].epoch);
  const maxLoss = Math.max(0.1, ...hist.map((r) => Math.max(r.train_loss, r.valid_loss, r.test_loss))
    .filter(Number.isFinite));
  const top = Math.max(1, Math.min(maxLoss, 3));
  ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
  ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
  ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  ctx.fillText("0", pad - 10, h - pad + 4);
  ctx.fillText(top.toFixed(1), 2, 12);
  ctx.fillText(`epoch ${last}`, w - 70, h - 8);
  const x = (e) => pad + (e / last) * (w - pad - 4);
  const y = (v) => 4 + (1 - Math.min(v, top) / top) * (h - pad - 8);
  const series = [["train", "#333"], ["valid", "#2f855a"], ["test", "#b83280"]];
  for (const [name, color] of series) {
    for (const [kind, dash] of [["error", []], ["loss", [4, 3]]]) {
      ctx.beginPath(); ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.lineWidth = 1.5;
      hist.forEach((r, i) => {
        const v = r[`${name}_${kind}`];
        if (i === 0) ctx.moveTo(x(r.epoch), y(v)); else ctx.lineTo(x(r.epoch), y(v));
      });
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
}

function drawUnits(s) {
  const box = $("units");
  box.replaceChildren();
  s.units.forEach((layer, l) => {
    const row = document.createElement("div");
    row.className = "layer";
    const shown = layer.length < s.units_per_layer[l] ? ` (the first ${layer.length})` : "";
    row.append(`layer ${l + 1}: ${s.units_per_layer[l]} units${shown} `);
    row.append(document.createElement("br"));
    layer.forEach((b64) => {
      const n = s.unit_grid, values = decode(b64);
      const canvas = document.createElement("canvas");
      canvas.width = n; canvas.height = n;
      const ctx = canvas.getContext("2d"), image = ctx.createImageData(n, n);
      for (let i = 0; i < n * n; i++) {
        const v = values[i];
        image.data.set([255 - v * 0.7, 255 - v * 0.45, 255 - v * 0.1, 255], 4 * i);
      }
      ctx.putImageData(image, 0, 0);
      row.append(canvas);
    });
    box.append(row);
  });
}

function render(s) {
  pg.state = s;
  drawRegions(s);
  drawCurves(s);
  drawUnits(s);
  const r = s.history[s.history.length - 1];
  const pct = (v) => `${(100 * v).toFixed(1)}%`;
  $("status").textContent = `epoch ${s.epoch}: train ${pct(r.train_error)} (loss ${r.train_loss.toFixed(3)}), `
    + `valid ${pct(r.valid_error)}, test ${pct(r.test_error)}` + (s.stopped ? ` — ${s.stopped}` : "");
  $("command").textContent = s.command;
  $("data-link").href = `api/runs/${pg.id}/data.csv`;
  $("model-link").href = `api/runs/${pg.id}/model.npz`;
  pg.renders += 1;
  $("regions").dataset.renders = pg.renders;
}

// -- show the math -----------------------------------------------------------------

const fmt = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)) ? v.toExponential(3) : v.toFixed(4);

function table(title, rows) {
  const t = document.createElement("table");
  const head = t.insertRow();
  const th = document.createElement("th");
  th.textContent = title; th.colSpan = Math.max(...rows.map((r) => r.length)) || 1;
  head.append(th);
  for (const r of rows) {
    const tr = t.insertRow();
    for (const v of r) tr.insertCell().textContent = typeof v === "number" ? fmt(v) : v;
  }
  return t;
}

function renderMath(m) {
  pg.math = m;
  const body = $("math-body");
  body.replaceChildren();
  const p = document.createElement("p");
  p.innerHTML = `x = (${m.x.map(fmt).join(", ")}), target class ${m.label}: loss `
    + `<b id="math-loss">${m.loss.toPrecision(8)}</b> = −log o_s[${m.label}]. `
    + `Finite differences (five-point, ε = 1e-3): largest relative error `
    + `<b id="math-check">${m.gradcheck.max_rel_error.toExponential(2)}</b> `
    + (m.gradcheck.passed ? "— passed" : "— FAILED")
    + (m.gradcheck.kinks ? ` (${m.gradcheck.kinks} entries at a kink left out)` : "") + ".";
  body.append(p);
  m.layers.forEach((layer, l) => {
    body.append(table(`hidden layer ${l + 1}: h_a, h_s`, [layer.h_a, layer.h_s]));
  });
  body.append(table("output: o_a, o_s", [m.o_a, m.o_s]));
  for (const [name, g] of Object.entries(m.grads)) {
    const rows = Array.isArray(g[0]) ? g : [g];
    body.append(table(`∂loss/∂${name} (this point's contribution)`, rows.slice(0, 16)));
  }
  $("math").hidden = false;
  if (pg.state) drawRegions(pg.state);
}

async function showMath(event) {
  if (!pg.id || !pg.state) return;
  const canvas = $("regions"), rect = canvas.getBoundingClientRect();
  const [x0, x1, y0, y1] = pg.state.box;
  const x = x0 + ((event.clientX - rect.left) / rect.width) * (x1 - x0);
  const y = y1 - ((event.clientY - rect.top) / rect.height) * (y1 - y0);
  try {
    renderMath(await api(`api/runs/${pg.id}/math`, { x, y, label: Number($("math-label").value) }));
  } catch (e) {
    showError(e.message);
  }
}

// -- start ---------------------------------------------------------------------------

async function start() {
  try {
    const info = await api("api/presets");
    pg.defaults = info.defaults;
    pg.presets = info.presets;
  } catch (e) {
    showError(e.message);
    return;
  }
  fillForm(pg.defaults);
  fillForm(urlSettings());
  for (const [name, runs] of Object.entries(pg.presets)) {
    runs.forEach((settings, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${name} ${i + 1}`;
      b.title = Object.entries(settings).map(([k, v]) => `${k} ${v}`).join(", ");
      b.addEventListener("click", () => { fillForm({ ...pg.defaults, ...settings }); reset().then(play); });
      $("presets").append(b);
    });
  }
  $("run").addEventListener("click", () => (pg.running ? pause() : play()));
  $("step").addEventListener("click", () => { pause(); advance(1); });
  $("reset").addEventListener("click", reset);
  $("regions").addEventListener("click", showMath);
  form.addEventListener("change", reset);
  await reset();
}

start();
