// The People tab: the photo library's groups of unnamed faces and its named people (/v1/library/...).
// Plain JS, loaded after app.js, whose helpers it uses: $, api (sends the key from sessionStorage),
// key, say, refreshGallery. Thumbnails are fetched with the key and shown as blob: URLs (an <img src>
// could not send the key), released on each refresh.
"use strict";
(() => {
  const MAX_GROUPS = 48;  // cards drawn at once (each fetches up to 4 thumbnails)
  const thumbUrls = [];
  const out = () => $("#people-result");

  function forgetThumbs() { thumbUrls.splice(0).forEach((u) => URL.revokeObjectURL(u)); }

  // An <img> filled in when its JPEG arrives.
  function thumb(faceId, size) {
    const img = document.createElement("img");
    img.className = "thumb"; img.alt = "face " + faceId; img.width = img.height = size;
    api("GET", `/v1/library/faces/${faceId}/thumbnail?size=${Math.min(256, size * 2)}`)
      .then((blob) => { const u = URL.createObjectURL(blob); thumbUrls.push(u); img.src = u; })
      .catch(() => { img.classList.add("missing"); img.alt = "photo gone"; });
    return img;
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const baseName = (path) => path.split(/[\\/]/).pop();

  function clusterCard(c) {
    const card = document.createElement("form");
    card.className = "cluster-card"; card.dataset.cluster = c.cluster; card.autocomplete = "off";
    const faces = document.createElement("div");
    faces.className = "thumbs";
    c.sample.forEach((id) => faces.appendChild(thumb(id, 64)));
    const caption = document.createElement("p");
    caption.className = "muted"; caption.textContent = `group ${c.cluster}: ${plural(c.faces, "face")}`;
    const name = document.createElement("input");
    name.required = true; name.maxLength = 200; name.placeholder = "Who is this?"; name.setAttribute("list", "people-names");
    name.setAttribute("aria-label", `name for group ${c.cluster}`);
    const row = document.createElement("div");
    row.className = "row";
    const naming = document.createElement("button");
    naming.type = "submit"; naming.textContent = "Name";
    const splitting = document.createElement("button");
    splitting.type = "button"; splitting.textContent = "Split"; splitting.title = "re-group these faces at a stricter cut";
    row.append(naming, splitting);
    card.append(faces, caption, name, row);
    card.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("POST", `/v1/library/clusters/${c.cluster}/name`, { name: name.value.trim() });
        say(out(), `${r.name}: ${plural(r.faces, "face")} named and enrolled`, true);
        if (typeof refreshGallery === "function") refreshGallery();  // app.js's Gallery tab
        await refreshPeople();
      } catch (e) { say(out(), e.message, false); }
    });
    splitting.addEventListener("click", async () => {
      try {
        const r = await api("POST", `/v1/library/clusters/${c.cluster}/split`, {});
        say(out(), `group ${c.cluster} split at ${r.threshold} into ${plural(r.parts.length, "group")}, ${r.unclustered} alone`, true);
        await refreshPeople();
      } catch (e) { say(out(), e.message, false); }
    });
    return card;
  }

  async function showPerson(name) {
    const box = $("#people-photos"), grid = $("#people-photos-grid");
    $("#people-photos-title").textContent = name;
    grid.innerHTML = ""; box.hidden = false;
    try {
      const r = await api("GET", `/v1/library/people/${encodeURIComponent(name)}/photos`);
      $("#people-photos-title").textContent = `${name}: ${plural(r.photos.length, "photo")} (threshold ${r.threshold})`;
      for (const p of r.photos) {
        const fig = document.createElement("figure");
        fig.className = "person-photo";
        const cap = document.createElement("figcaption");
        cap.textContent = baseName(p.photo) + (p.distance === null ? "" : ` · ${p.distance.toFixed(3)}`);
        cap.title = `${p.photo} (${p.how})`;
        fig.append(thumb(p.face, 96), cap);
        grid.appendChild(fig);
      }
    } catch (e) { say(out(), e.message, false); }
  }

  async function refreshPeople() {
    if (!key()) return;
    let clusters, people;
    try {
      [clusters, people] = await Promise.all([api("GET", "/v1/library/clusters"), api("GET", "/v1/library/people")]);
    } catch (e) { return say(out(), e.message, false); }
    forgetThumbs();
    const list = $("#people-named"), names = $("#people-names");
    list.innerHTML = ""; names.innerHTML = "";
    for (const p of people.people) {
      const li = document.createElement("li"), b = document.createElement("button");
      b.type = "button"; b.className = "person"; b.dataset.name = p.name;
      b.textContent = `${p.name} (${plural(p.photos, "photo")})`;
      b.addEventListener("click", () => showPerson(p.name));
      li.appendChild(b); list.appendChild(li);
      const o = document.createElement("option"); o.value = p.name; names.appendChild(o);
    }
    if (!people.people.length) list.innerHTML = "<li class='muted'>nobody named yet</li>";
    $("#people-threshold").textContent = clusters.threshold === null
      ? `Not grouped yet (${plural(clusters.unclustered, "unnamed face")}): press "Group the unnamed faces".`
      : `${plural(clusters.clusters.length, "group")} cut at distance ${clusters.threshold} (${clusters.method}); ` +
        `${plural(clusters.unclustered, "face")} alone. Naming a group after someone already named adds it to them.`;
    if (clusters.clusters.length > MAX_GROUPS) {
      $("#people-threshold").textContent += ` Showing the ${MAX_GROUPS} largest: name some, then group again.`;
    }
    const grid = $("#people-clusters");
    grid.innerHTML = "";
    clusters.clusters.slice(0, MAX_GROUPS).forEach((c) => grid.appendChild(clusterCard(c)));
  }

  $("#tabs button[data-tab=people]").addEventListener("click", refreshPeople);
  $("#people-refresh").addEventListener("click", refreshPeople);
  $("#people-cluster").addEventListener("click", async () => {
    say(out(), "grouping...", true);
    try {
      const r = await api("POST", "/v1/library/cluster", {});
      say(out(), `${plural(r.faces, "unnamed face")}: ${plural(r.clusters, "group")} at threshold ${r.threshold} (${r.threshold_rule})`, true);
      await refreshPeople();
    } catch (e) { say(out(), e.message, false); }
  });
})();
