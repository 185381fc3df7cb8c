// The Style tab: the methods and styles the server offers (GET /v1/styles), the fast method first;
// the 26 built-in styles by name (fast only), the server's style images, or an uploaded painting.
// A result shows how long it took and a download link. Plain JS, loaded after app.js (uses $, api,
// say, sleep).
"use strict";
(() => {
  const METHODS = { fast: "fast (one pass, seconds)", optimize: "optimisation (minutes)" };
  let offer = { methods: [], styles: [], presets: [] }, resultUrl = null;
  const out = () => $("#style-result");

  function option(parent, value, text) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; parent.appendChild(o);
  }

  function group(parent, label, values, prefix) {
    if (!values.length) return;
    const g = document.createElement("optgroup");
    g.label = label;
    values.forEach((n) => option(g, prefix + n, n.replace(/_/g, " ")));
    parent.appendChild(g);
  }

  // The style list for the method picked (built-in styles only with the fast method); Steps only
  // for the optimisation; the file input only when no listed style is picked.
  function fillStyles() {
    const method = $("#style-method").value, sel = $("#style-name"), was = sel.value;
    sel.replaceChildren();
    if (method === "fast") group(sel, "built-in styles (fast)", offer.presets, "preset:");
    group(sel, "style images on the server", offer.styles, "image:");
    option(sel, "", "(upload a painting)");
    if (was && [...sel.options].some((o) => o.value === was)) sel.value = was;  // else the first listed style
    $("#style-steps-label").hidden = method !== "optimize";
    $("#style-file-label").hidden = sel.value !== "";
  }

  async function loadStyles() {
    if (!key()) return say(out(), "no API key: paste one above", false);
    try { offer = await api("GET", "/v1/styles"); } catch (e) { return say(out(), e.message, false); }
    const m = $("#style-method"), was = m.value;
    m.replaceChildren();
    ["fast", "optimize"].filter((x) => offer.methods.includes(x)).forEach((x) => option(m, x, METHODS[x]));
    if (was && offer.methods.includes(was)) m.value = was;
    fillStyles();
  }

  function showResult(blob, seconds, what) {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    $("#style-image").src = resultUrl; $("#style-image").hidden = false;
    const a = $("#style-download");
    a.href = resultUrl; a.download = `stylised-${what.replace(/[^a-z0-9_-]+/gi, "_")}.png`; a.hidden = false;
    say(out(), `done in ${seconds.toFixed(1)} s`, true);
  }

  $("#tabs button[data-tab=style]").addEventListener("click", loadStyles);
  $("#style-method").addEventListener("change", fillStyles);
  $("#style-name").addEventListener("change", fillStyles);

  $("#style-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const bar = $("#style-progress"), form = new FormData(), method = $("#style-method").value;
    const picked = $("#style-name").value, [kind, name] = [picked.split(":")[0], picked.slice(picked.indexOf(":") + 1)];
    form.append("content", $("#style-content").files[0]);
    if (kind === "preset") form.append("preset", name);
    else if (kind === "image") form.append("style_name", name);
    else if ($("#style-file").files[0]) form.append("style", $("#style-file").files[0]);
    else return say(out(), "upload a painting or pick a style", false);
    form.append("method", method);
    form.append("size", $("#style-size").value);
    if (method === "optimize") form.append("steps", $("#style-steps").value);
    const t0 = performance.now();
    $("#style-download").hidden = true;
    try {
      let job = await api("POST", "/v1/stylize", form);
      bar.hidden = false;
      while (job.status === "queued" || job.status === "running") {
        bar.value = job.progress; say(out(), `${job.status}: ${Math.round(job.progress * 100)}%`, true);
        await sleep(method === "fast" ? 300 : 1000);
        job = await api("GET", "/v1/jobs/" + job.id);
      }
      bar.hidden = true;
      if (job.status !== "done") return say(out(), "failed: " + job.message, false);
      const png = await api("GET", job.result);
      showResult(png, (performance.now() - t0) / 1000, kind ? name : "upload");
    } catch (e) { bar.hidden = true; say(out(), e.message, false); }
  });
})();
