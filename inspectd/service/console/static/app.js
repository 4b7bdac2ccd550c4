// inspectd console: plain JS on the console's JSON API; live updates by server push (/api/events).
"use strict";

const $ = (id) => document.getElementById(id);
let cameras = [];
let tuned = null; // camera whose threshold inputs were filled from the overview

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

async function api(path, options = {}) {
  const resp = await fetch(path, options);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : resp.statusText;
    const err = new Error(`${resp.status}: ${detail}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function tile(cam) {
  const last = cam.latest;
  const verdict = last ? last.verdict : "none";
  const img = el("img", { alt: `${cam.camera} latest part` });
  if (last && last.artifacts.includes("heatmap.jpg")) img.src = `/api/records/${last.id}/heatmap.jpg`;
  else if (last && last.artifacts.includes("frame.jpg")) img.src = `/api/records/${last.id}/frame.jpg`;
  if (last) img.onclick = () => showDetail(last.id);
  const dl = el("dl", {},
    el("dt", {}, "score"), el("dd", { class: "score" }, `${fmt(last && last.score)} / ${fmt(cam.image_threshold)}`),
    el("dt", {}, "state"), el("dd", { class: `state ${cam.state}` }, cam.state),
    el("dt", {}, "part"), el("dd", { class: "part" }, last ? (last.part_id || `#${last.seq}`) : "–"),
    el("dt", {}, "fps in"), el("dd", {}, fmt(cam.fps_in, 1)),
    el("dt", {}, "seq"), el("dd", { class: "seq" }, last ? String(last.seq) : "–"),
    el("dt", {}, "queue"), el("dd", {}, String(cam.queue)),
    el("dt", {}, "defects"), el("dd", {}, last ? String(last.defects.length) : "–"),
    el("dt", {}, "p95"), el("dd", {}, cam.p95_latency_ms === null ? "–" : `${fmt(cam.p95_latency_ms, 0)} ms`),
  );
  const reason = last && last.reason ? ` (${last.reason})` : "";
  return el("div", { class: `tile ${verdict}`, "data-camera": cam.camera },
    el("h3", {}, el("span", {}, cam.camera), el("span", { class: `verdict ${verdict}` }, verdict + reason)),
    img, dl);
}

function renderOverview(ov) {
  $("random-banner").hidden = !ov.random_weights;
  const names = ov.cameras.map((c) => c.camera);
  if (names.join() !== cameras.join()) {
    cameras = names;
    for (const sel of [$("history-camera"), $("tune-camera")]) {
      const keep = sel.value;
      sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (names.includes(keep)) sel.value = keep;
    }
  }
  const tiles = $("tiles");
  for (const cam of ov.cameras) {
    const fresh = tile(cam);
    const old = tiles.querySelector(`.tile[data-camera="${CSS.escape(cam.camera)}"]`);
    if (!old) tiles.append(fresh);
    else {
      const oldImg = old.querySelector("img"), newImg = fresh.querySelector("img");
      if (oldImg.src === newImg.src) newImg.replaceWith(oldImg); // keep the loaded image, no flicker
      old.replaceWith(fresh);
    }
  }
  const cam = ov.cameras.find((c) => c.camera === $("tune-camera").value);
  if (cam && tuned !== cam.camera) {
    tuned = cam.camera;
    $("tune-image").value = cam.image_threshold;
    $("tune-pixel").value = cam.pixel_threshold;
  }
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("overview", (ev) => {
    $("link").textContent = "live";
    $("link").className = "link up";
    renderOverview(JSON.parse(ev.data));
  });
  source.onerror = () => {
    $("link").textContent = "reconnecting…";
    $("link").className = "link down";
  };
}

async function loadHistory() {
  const cam = $("history-camera").value;
  if (!cam) return;
  const rows = await api(`/api/cameras/${encodeURIComponent(cam)}/history?filter=${$("history-filter").value}&limit=100`);
  $("history-rows").replaceChildren(...rows.map((r) => {
    const full = r.verdict === "pass" && r.artifacts.includes("frame.png");
    const tick = el("input", { type: "checkbox", value: r.id, disabled: !full,
      title: full ? "good part for references" : r.verdict === "pass"
        ? "no full-size frame kept for this part: only the newest console.reference_frames passed parts have one (fewer while the console is busy)"
        : "only passed parts" });
    tick.onclick = (ev) => ev.stopPropagation();
    const tr = el("tr", { class: "row", "data-record": r.id },
      el("td", {}, tick), el("td", {}, String(r.seq)), el("td", {}, r.part_id || ""),
      el("td", { class: `verdict ${r.verdict}` }, r.verdict + (r.reason ? ` (${r.reason})` : "")),
      el("td", {}, fmt(r.score)), el("td", {}, fmt(r.threshold)), el("td", {}, String(r.defects.length)),
      el("td", {}, r.captured_at.replace("T", " ").slice(0, 23)));
    tr.onclick = () => showDetail(r.id);
    return tr;
  }));
}

async function showDetail(id) {
  const r = await api(`/api/records/${id}`);
  $("detail").hidden = false;
  $("detail-title").textContent = `${r.camera} #${r.seq} ${r.part_id || ""}: ${r.verdict} (score ${fmt(r.score)} / ${fmt(r.threshold)})`;
  $("detail-frame").src = r.artifacts.includes("frame.jpg") ? `/api/records/${id}/frame.jpg` : "";
  $("detail-heatmap").src = r.artifacts.includes("heatmap.jpg") ? `/api/records/${id}/heatmap.jpg` : "";
  $("detail-json").textContent = JSON.stringify({ defects: r.defects, reason: r.reason, detail: r.detail, latency_ms: r.latency_ms }, null, 1);
  location.hash = "history";
}

async function loadFails() {
  const fails = await api("/api/fails?limit=24");
  $("gallery").replaceChildren(...fails.map((r) => {
    const img = el("img", { alt: r.id, src: r.artifacts.includes("heatmap.jpg") ? `/api/records/${r.id}/heatmap.jpg` : "" });
    const fig = el("figure", {}, img, el("figcaption", {}, `${r.camera} #${r.seq} ${r.part_id || ""} ${fmt(r.score)}`));
    fig.onclick = () => showDetail(r.id);
    return fig;
  }));
}

async function loadModels() {
  const m = await api("/api/models");
  $("device").textContent = m.device;
  $("model-rows").replaceChildren(...m.models.map((x) =>
    el("tr", {}, el("td", {}, x.name), el("td", {}, x.id), el("td", { class: x.random ? "verdict fail" : "" }, x.random ? "RANDOM" : "released"))));
}

function proposal() {
  return { image_threshold: parseFloat($("tune-image").value), pixel_threshold: parseFloat($("tune-pixel").value) };
}

async function preview() {
  const cam = $("tune-camera").value;
  try {
    const p = await api(`/api/cameras/${encodeURIComponent(cam)}/preview`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(proposal()) });
    const pct = (x) => (x === null ? "–" : `${(100 * x).toFixed(1)} %`);
    const older = p.left_out ? ` (${p.left_out} older parts left out: scored by another model or reference bank)` : "";
    $("preview").textContent = `${p.parts} recent parts${older}: fail rate ${pct(p.fail_rate_now)} now, ${pct(p.fail_rate_proposed)} at the proposal; ${p.flips.length} would change verdict.`;
    $("flips").replaceChildren(...p.flips.map((f) => el("li", { class: `to-${f.proposed}`, "data-record": f.id },
      `${f.part_id || "#" + f.seq}: ${f.now} → ${f.proposed} (score ${fmt(f.score)})`)));
  } catch (e) {
    $("preview").textContent = `preview failed: ${e.message}`;
  }
}

function authHeaders() {
  const name = $("auth-name").value, password = $("auth-password").value;
  const headers = { "Content-Type": "application/json", "X-Inspectd-Console": "1" };
  if (name || password) headers.Authorization = "Basic " + btoa(unescape(encodeURIComponent(`${name}:${password}`)));
  return headers;
}

function showResult(ok, text) {
  $("change-result").textContent = text;
  $("change-result").className = `result ${ok ? "ok" : "bad"}`;
}

async function apply() {
  const cam = $("tune-camera").value;
  try {
    const r = await api(`/api/cameras/${encodeURIComponent(cam)}/thresholds`, {
      method: "POST", headers: authHeaders(), body: JSON.stringify(proposal()) });
    showResult(r.reloaded, `${r.reloaded ? "applied" : "written but NOT applied (see the log)"}: ${cam} ${JSON.stringify(r.after)} in ${r.file}`);
    tuned = null;
  } catch (e) {
    showResult(false, `refused: ${e.message}`);
  }
}

async function addReferences() {
  const cam = $("history-camera").value;
  const ids = [...document.querySelectorAll("#history-rows input:checked")].map((i) => i.value);
  if (!ids.length) { showResult(false, "tick some good parts in the history first"); return; }
  try {
    const r = await api(`/api/cameras/${encodeURIComponent(cam)}/references`, {
      method: "POST", headers: authHeaders(), body: JSON.stringify({ records: ids }) });
    const notes = (r.notes || []).map((n) => ` ${n}`).join("");
    showResult(true, `references of ${cam}: ${r.bank.images} images, ${r.bank.patches} patches in ${r.bank.folder}.${notes}`);
  } catch (e) {
    showResult(false, `refused: ${e.message}`);
  }
  location.hash = "tuning";
}

window.addEventListener("DOMContentLoaded", () => {
  $("history-refresh").onclick = () => { loadHistory(); loadFails(); };
  $("history-camera").onchange = loadHistory;
  $("history-filter").onchange = loadHistory;
  $("tune-camera").onchange = () => { tuned = null; };
  $("preview-btn").onclick = preview;
  $("apply-btn").onclick = apply;
  $("add-references").onclick = addReferences;
  api("/api/overview").then((ov) => { renderOverview(ov); loadHistory(); loadFails(); }).catch(() => {});
  loadModels().catch(() => {});
  connect();
  setInterval(() => { loadFails().catch(() => {}); }, 10000);
});
