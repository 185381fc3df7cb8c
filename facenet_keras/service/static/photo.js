// The Photo tab: recognise the faces of an uploaded photo (POST /v1/recognize), drawn as boxes with
// names over it, and compare the main faces of two photos (POST /v1/compare). Names from the server
// are set as text, never as HTML. Plain JS, loaded after app.js (uses $, api, say).
"use strict";
(() => {
  let photoUrl = null;

  // The photo with a box per face, placed in percent of the photo's own pixels (so it scales).
  async function photoWithFaces(file, faces) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(file);
    const img = new Image();
    img.alt = "the photo"; img.src = photoUrl;
    await img.decode().catch(() => null);
    const wrap = $("#recognize-photo");
    wrap.replaceChildren(img);
    for (const f of faces) {
      const [x, y, w, h] = f.box, box = document.createElement("div"), label = document.createElement("span");
      box.className = "face-box" + (f.gated ? " gated" : f.identity ? "" : " unknown");
      Object.assign(box.style, {
        left: (100 * x) / img.naturalWidth + "%", top: (100 * y) / img.naturalHeight + "%",
        width: (100 * w) / img.naturalWidth + "%", height: (100 * h) / img.naturalHeight + "%",
      });
      label.className = "face-label";
      label.textContent = faceText(f);
      box.appendChild(label);
      wrap.appendChild(box);
    }
  }

  function faceText(f) {
    if (f.gated) return `not usable: ${f.gated}`;
    return f.identity ? `${f.identity} (${f.distance.toFixed(2)})` : "not recognised";
  }

  $("#recognize-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("#recognize-file").files[0], out = $("#recognize-result"), list = $("#recognize-names");
    list.replaceChildren(); $("#recognize-photo").replaceChildren();
    if (!file) return say(out, "choose a photo", false);
    say(out, "recognising...", true);
    const form = new FormData();
    form.append("photo", file);
    try {
      const r = await api("POST", "/v1/recognize", form);
      await photoWithFaces(file, r.faces);
      const named = r.faces.filter((f) => f.identity).length;
      say(out, r.faces.length ? `${r.faces.length} face(s), ${named} recognised` : "no face found in the photo", named > 0);
      for (const f of r.faces) {
        const li = document.createElement("li");
        li.textContent = faceText(f);
        list.appendChild(li);
      }
    } catch (e) { say(out, e.message, false); }
  });

  $("#compare-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#compare-result"), a = $("#compare-file1").files[0], b = $("#compare-file2").files[0];
    if (!a || !b) return say(out, "choose two photos", false);
    say(out, "comparing...", true);
    const form = new FormData();
    form.append("photo1", a); form.append("photo2", b);
    try {
      const r = await api("POST", "/v1/compare", form), d = r.distance.toFixed(3);
      say(out, r.match ? `Same person (distance ${d} <= ${r.threshold})` : `Not the same person (distance ${d} > ${r.threshold})`, r.match);
    } catch (e) { say(out, e.message, false); }
  });
})();
