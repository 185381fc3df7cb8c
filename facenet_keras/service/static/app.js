// The facenet-keras web page: plain JS, no build step. The API key lives in sessionStorage only.
"use strict";
const $ = (sel) => document.querySelector(sel);
const KEY = "facenet-keras-key";
const state = { stream: null, live: false, busy: false, scope: null };
const CAMERA_TABS = ["camera", "enrol", "verify"];  // the tabs that use the camera; the others hide it

function key() { return sessionStorage.getItem(KEY) || ""; }

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + key() };
  if (body && !(body instanceof FormData)) { headers["Content-Type"] = "application/json"; body = JSON.stringify(body); }
  const res = await fetch(path, { method, headers, body });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) {
    let message = data && data.error ? data.error.message : res.status + " " + res.statusText;
    if (res.status === 401) message = key() ? "the API key was refused (unknown or revoked): paste another above"
      : "no API key: paste one above (made on the server with facenet-keras keys create)";
    const err = new Error(message);
    err.status = res.status; err.code = data && data.error ? data.error.code : "";
    err.details = data && data.error ? data.error : {};  // e.g. several_faces: the photo and its faces' boxes
    throw err;
  }
  return data;
}

function say(el, text, ok) { el.textContent = text; el.className = "result " + (ok ? "ok" : "error"); }

// ---------------------------------------------------------------- key and tabs
const SCOPE_MAY = { read: "recognise, verify, compare", write: "also enrol and stylise", admin: "also export" };

// Ask the server what the key in use may do (GET /v1/keys/me); a refused key is forgotten, with why.
async function checkKey() {
  const st = $("#key-state"), hint = $("#key-hint");
  state.scope = null;
  if (!key()) { st.textContent = "no key yet"; st.className = "muted"; hint.hidden = false; return; }
  try {
    const me = await api("GET", "/v1/keys/me");
    state.scope = me.scope;
    st.textContent = `key set: scope ${me.scope} (${SCOPE_MAY[me.scope] || "?"})`; st.className = "ok";
    hint.hidden = true;
  } catch (e) {
    if (e.status === 401) sessionStorage.removeItem(KEY);
    st.textContent = e.message; st.className = "error"; hint.hidden = e.status !== 401;
  }
}
$("#key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("#api-key").value.trim());
  $("#api-key").value = "";
  await checkKey();
  if (state.scope) refreshGallery();
});

function showTab(name) {
  document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== "tab-" + name; });
  $("#stage").hidden = !CAMERA_TABS.includes(name);
}
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
  showTab(b.dataset.tab);
  if (b.dataset.tab === "gallery" || b.dataset.tab === "verify") refreshGallery();
}));

// ---------------------------------------------------------------- camera
async function startCamera() {
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    cameraState("no camera: " + e.message + " (the camera needs https or localhost)", false);
    return;
  }
  $("#video").srcObject = state.stream;
  await $("#video").play();
  $("#camera-start").disabled = true; $("#camera-stop").disabled = false;
  cameraState("camera on", true);
  state.live = true;
  liveLoop();
}

function stopCamera() {
  state.live = false;
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null; $("#video").srcObject = null; $("#overlay").innerHTML = "";
  $("#camera-start").disabled = false; $("#camera-stop").disabled = true;
  cameraState("camera off", true);
}

// The line under the video: "camera on", or why nobody is named (no key, a refused key, an error).
function cameraState(text, ok) {
  const el = $("#camera-state");
  el.textContent = text; el.className = ok ? "muted" : "result error";
}
$("#camera-start").addEventListener("click", startCamera);
$("#camera-stop").addEventListener("click", stopCamera);

// One frame of the video as a JPEG blob, its longer side at most `side` px; scale = frame px per blob px.
function grab(side = 640) {
  const v = $("#video");
  if (!v.videoWidth) return Promise.resolve(null);
  const s = Math.min(1, side / Math.max(v.videoWidth, v.videoHeight));
  const c = document.createElement("canvas");
  c.width = Math.round(v.videoWidth * s); c.height = Math.round(v.videoHeight * s);
  c.getContext("2d").drawImage(v, 0, 0, c.width, c.height);
  return new Promise((ok) => c.toBlob((b) => ok({ blob: b, scale: 1 / s }), "image/jpeg", 0.85));
}

function drawFaces(faces, scale) {
  const v = $("#video"), wrap = $("#video-wrap"), overlay = $("#overlay");
  const k = Math.min(wrap.clientWidth / v.videoWidth, wrap.clientHeight / v.videoHeight);
  const dx = (wrap.clientWidth - v.videoWidth * k) / 2, dy = (wrap.clientHeight - v.videoHeight * k) / 2;
  overlay.innerHTML = "";
  const names = [];
  for (const f of faces) {
    const [x, y, w, h] = f.box.map((n) => n * scale * k);
    const box = document.createElement("div");
    // a face the quality gate turned away is never named: drawn grey, with the gate's reason
    box.className = "face-box" + (f.gated ? " gated" : f.identity ? "" : " unknown");
    Object.assign(box.style, { left: dx + x + "px", top: dy + y + "px", width: w + "px", height: h + "px" });
    const label = document.createElement("span");
    label.className = "face-label";
    label.textContent = f.gated ? `not usable: ${f.gated}` : f.identity || "not recognised";
    box.appendChild(label);
    overlay.appendChild(box);
    names.push(label.textContent);
  }
  $("#live-names").innerHTML = names.map((n) => "<li></li>").join("");
  document.querySelectorAll("#live-names li").forEach((li, i) => { li.textContent = names[i]; });
}

async function liveLoop() {
  while (state.live) {
    if (!key()) cameraState("camera on, but no API key: nobody is named until you paste one above", false);
    else if ($("#live-recognize").checked && !state.busy && !$("#stage").hidden) {
      const shot = await grab();
      if (shot) {
        const form = new FormData();
        form.append("photo", shot.blob, "frame.jpg");
        try {
          const out = await api("POST", "/v1/recognize", form);
          if (state.live) drawFaces(out.faces, shot.scale);
          cameraState("camera on", true);
        } catch (e) {
          cameraState(e.message, false);
          if (e.status === 401 && key()) checkKey();  // says why, and forgets a refused key
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

// ---------------------------------------------------------------- verify with a liveness challenge
const PROMPTS = { turn_left: "Turn your head left", turn_right: "Turn your head right", blink: "Blink" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

$("#verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("#verify-result"), name = $("#verify-name").value;
  if (!state.stream) return say(out, "start the camera first", false);
  if (!name) return say(out, "nobody is enrolled yet", false);
  let ch;
  try { ch = await api("GET", "/v1/liveness/challenge"); } catch (e) { return say(out, e.message, false); }
  const prompts = ch.challenge.prompts, fps = 10;
  const end = Math.max(...prompts.map((p) => p.end)) + 0.3;
  const frames = [], times = [], t0 = performance.now(), prompt = $("#prompt");
  prompt.hidden = false;
  while ((performance.now() - t0) / 1000 < end) {
    const t = (performance.now() - t0) / 1000;
    const now = prompts.find((p) => t >= p.start && t < p.end);
    prompt.textContent = now ? PROMPTS[now.action] || now.action : "Look at the camera";
    const shot = await grab(480);
    if (shot) { frames.push(shot.blob); times.push(t.toFixed(3)); }  // t: when the frame was drawn
    await sleep(Math.max(shot ? 0 : 100, frames.length * 1000 / fps - (performance.now() - t0)));
  }
  prompt.hidden = true;
  say(out, "checking...", true);
  try {
    // one request: the server checks the prompts and matches the face on the same frames
    const form = new FormData();
    form.append("token", ch.token); form.append("identity", name); form.append("times", times.join(","));
    frames.forEach((b, i) => form.append("frames", b, `frame-${i}.jpg`));
    const r = await api("POST", "/v1/liveness/challenge", form), v = r.verification;
    if (!r.live) return say(out, "Refused: liveness check failed: " + r.reasons.join("; "), false);
    say(out, v.match ? `Welcome, ${name} (distance ${v.distance.toFixed(3)})` :
      `Refused: not ${name} (distance ${v.distance.toFixed(3)} > ${v.threshold})`, v.match);
  } catch (e) { say(out, e.message, false); }
});

// ---------------------------------------------------------------- gallery
async function refreshGallery() {
  if (!key()) return;
  let data;
  try { data = await api("GET", "/v1/people"); } catch (e) { $("#key-state").textContent = e.message; return; }
  const body = $("#gallery-table tbody");
  body.innerHTML = "";
  const select = $("#verify-name");
  select.innerHTML = "";
  for (const p of data.people) {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td></td><td></td><td><button data-act='rename'>Rename</button> <button data-act='delete'>Delete</button></td>";
    tr.children[0].textContent = p.name; tr.children[1].textContent = p.photos;
    tr.querySelector("[data-act=rename]").addEventListener("click", async () => {
      const to = prompt("New name for " + p.name, p.name);
      if (to && to !== p.name) { try { await api("PATCH", "/v1/people/" + encodeURIComponent(p.name), { name: to }); } catch (e) { alert(e.message); } refreshGallery(); }
    });
    tr.querySelector("[data-act=delete]").addEventListener("click", async () => {
      if (confirm("Remove " + p.name + " and all their photos?")) { try { await api("DELETE", "/v1/people/" + encodeURIComponent(p.name)); } catch (e) { alert(e.message); } refreshGallery(); }
    });
    body.appendChild(tr);
    const opt = document.createElement("option"); opt.value = opt.textContent = p.name; select.appendChild(opt);
  }
}
$("#gallery-refresh").addEventListener("click", refreshGallery);

checkKey().then(() => { if (state.scope) refreshGallery(); });
