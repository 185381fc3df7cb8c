// The Enrol tab: photos (or a camera snapshot) sent one by one, so each question is about one photo.
// The server enrols a photo with several faces only when told which (422 several_faces, with their
// boxes): the photo is shown with its faces and the user picks one. A name already enrolled (409) is
// not added to silently: the page asks first. Plain JS, loaded after app.js (uses $, api, say, grab,
// refreshGallery).
"use strict";
(() => {
  const out = () => $("#enrol-result");

  // Show the question with buttons [[label, value], ...]; resolves with the value clicked.
  function ask(question, answers, photo) {
    $("#enrol-question").textContent = question;
    $("#enrol-photo").replaceChildren(...(photo ? [photo] : []));
    const buttons = $("#enrol-answers");
    buttons.replaceChildren();
    $("#enrol-ask").hidden = false;
    return new Promise((done) => {
      const finish = (value) => { $("#enrol-ask").hidden = true; $("#enrol-photo").replaceChildren(); done(value); };
      for (const [label, value] of answers) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = label;
        b.addEventListener("click", () => finish(value));
        buttons.appendChild(b);
      }
      if (photo) photo.addEventListener("choose", (ev) => finish(ev.detail));
    });
  }

  // The photo with a button over each face (boxes in the photo's pixels); resolves the face index.
  async function facePicker(blob, faces) {
    const url = URL.createObjectURL(blob), img = new Image();
    img.alt = "the photo"; img.src = url;
    await img.decode().catch(() => null);
    const wrap = document.createElement("div");
    wrap.className = "picker";
    wrap.appendChild(img);
    for (const f of faces) {
      const [x, y, w, h] = f.box, b = document.createElement("button");
      b.type = "button"; b.className = "choose-face"; b.dataset.face = f.face;
      b.title = "enrol this face";
      Object.assign(b.style, {
        left: (100 * x) / img.naturalWidth + "%", top: (100 * y) / img.naturalHeight + "%",
        width: (100 * w) / img.naturalWidth + "%", height: (100 * h) / img.naturalHeight + "%",
      });
      const label = document.createElement("span");
      label.textContent = "face " + f.face;
      b.appendChild(label);
      b.addEventListener("click", () => wrap.dispatchEvent(new CustomEvent("choose", { detail: String(f.face) })));
      wrap.appendChild(b);
    }
    wrap.addEventListener("choose", () => URL.revokeObjectURL(url));
    return wrap;
  }

  // One photo: to a new person (first) or to `name`; asks which face, or whether to add to an existing name.
  async function sendOne(name, blob, fname, toExisting) {
    let face = null;
    for (;;) {
      const form = new FormData();
      if (!toExisting) form.append("name", name);
      if (face !== null) form.append("face", face);
      form.append("photos", blob, fname);
      const path = toExisting ? "/v1/people/" + encodeURIComponent(name) + "/photos" : "/v1/people";
      try {
        return await api("POST", path, form);
      } catch (e) {
        if (e.status === 409 && !toExisting) {
          const add = await ask(`${name} is already enrolled. Add ${fname} to ${name}?`,
            [["Add to " + name, true], ["Cancel", false]]);
          if (!add) throw new Error("nothing enrolled: " + name + " is already enrolled");
          toExisting = true;
        } else if (e.code === "several_faces" && face === null) {
          const picker = await facePicker(blob, e.details.faces || []);
          const chosen = await ask(`${fname} shows ${(e.details.faces || []).length} faces: click the one to enrol.`,
            [["Cancel", null]], picker);
          if (chosen === null) throw new Error("nothing enrolled from " + fname + ": no face chosen");
          face = chosen;
        } else throw e;
      }
    }
  }

  async function enrol(name, files) {
    let last = null, existing = false;
    for (const [blob, fname] of files) {
      last = await sendOne(name, blob, fname, existing);
      existing = true;  // the person exists now: the next photos are added to them
    }
    return last;
  }

  async function run(name, files, where) {
    if (!name) return say(out(), "give a name", false);
    say(out(), "enrolling...", true);
    try {
      const done = await enrol(name, files);
      const warn = (done.warnings || []).length ? " - warning: " + done.warnings.join("; ") : "";
      say(out(), `enrolled ${done.name}${where} (${done.photos} photo(s))${warn}`, !warn);
      refreshGallery();
    } catch (e) { say(out(), e.message, false); }
  }

  $("#enrol-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const files = Array.from($("#enrol-files").files).map((f) => [f, f.name]);
    if (!files.length) return say(out(), "choose one or more photos", false);
    run($("#enrol-name").value.trim(), files, "");
  });

  $("#enrol-snapshot").addEventListener("click", async () => {
    const shot = await grab(1280);
    if (!shot) return say(out(), "start the camera first", false);
    run($("#enrol-name").value.trim(), [[shot.blob, "camera.jpg"]], " from the camera");
  });
})();
