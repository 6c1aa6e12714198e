// The review page: filters, the hazard list and the map kept in step, the detail panel and decisions.
"use strict";

const state = {
  me: null,
  hazards: [],
  markers: new Map(), // hazard id -> Leaflet circle marker
  selected: null,
  uncertainty: null, // circle of the selected hazard's position uncertainty
  sightings: null, // the selected hazard's sightings: where each frame placed it, and the ray from the vehicle
  moving: false,
  map: null,
  fitted: false,
};
window.reviewState = state; // read by the end-to-end tests

const $ = (id) => document.getElementById(id);
const DRIVE_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

function query() {
  const params = new URLSearchParams();
  for (const box of document.querySelectorAll("#class-filter input:checked")) params.append("class", box.value);
  for (const box of document.querySelectorAll("#status-filter input:checked")) params.append("status", box.value);
  for (const [id, name] of [["min-confidence", "min_confidence"], ["since", "since"], ["until", "until"], ["drive", "drive"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  return params;
}

function sorted(rows) {
  const [key, order] = $("sort").value.split(":");
  const sign = order === "desc" ? -1 : 1;
  return [...rows].sort((a, b) => (a[key] < b[key] ? -sign : a[key] > b[key] ? sign : a.id - b.id));
}

function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

async function loadHazards() {
  const params = query();
  for (const format of ["geojson", "gpkg", "csv"]) {
    const exportParams = new URLSearchParams(params);
    exportParams.set("format", format);
    $("export-" + format).href = "/api/export?" + exportParams.toString();
  }
  const data = await review.get("/api/hazards?" + params.toString());
  state.hazards = sorted(data.hazards);
  drawList();
  drawMarkers();
}

function drawList() {
  const body = document.querySelector("#hazard-list tbody");
  body.replaceChildren(
    ...state.hazards.map((h) =>
      review.el(
        "tr",
        { dataset: { id: h.id }, className: h.id === state.selected ? "selected" : "", on: { click: () => select(h.id, true) } },
        review.el("td", {}, h.id),
        review.el("td", {}, h.class, h.street ? review.el("div", { className: "street" }, h.street) : ""),
        review.el("td", {}, review.el("span", { className: "status " + h.status, title: h.held_reason || "" },
          h.held_reason ? `${h.status}, waits for review` : h.status),
          h.held_reason ? review.el("div", { className: "held-reason" }, h.held_reason) : ""),
        review.el("td", {}, review.number(h.confidence)),
        review.el("td", {}, review.number(h.severity, 0)),
        review.el("td", {}, h.first_seen.replace("T", " ").replace("Z", "")),
      ),
    ),
  );
  $("count").textContent = `${state.hazards.length} hazards`;
}

function drawMarkers() {
  for (const marker of state.markers.values()) marker.remove();
  state.markers.clear();
  for (const h of state.hazards) {
    const marker = L.circleMarker([h.lat, h.lon], {
      radius: 7,
      weight: 2,
      color: "#222",
      fillColor: review.colours[h.status] || "#333",
      fillOpacity: 0.9,
      className: "hazard-marker",
    });
    marker.bindTooltip(review.el("span", {}, `#${h.id} ${h.class} (${h.status})`)); // an element: a string would be HTML
    marker.on("click", () => select(h.id, false));
    marker.addTo(state.map);
    state.markers.set(h.id, marker);
  }
  highlight();
  if (!state.fitted && state.hazards.length) {
    state.map.fitBounds(L.latLngBounds(state.hazards.map((h) => [h.lat, h.lon])).pad(0.2));
    state.fitted = true;
  }
}

function highlight() {
  for (const [id, marker] of state.markers) {
    marker.setStyle(id === state.selected ? { radius: 11, color: "#0044ff", weight: 4 } : { radius: 7, color: "#222", weight: 2 });
    if (id === state.selected) marker.bringToFront();
  }
  for (const row of document.querySelectorAll("#hazard-list tbody tr")) {
    row.classList.toggle("selected", Number(row.dataset.id) === state.selected);
  }
}

async function select(id, pan) {
  state.selected = id;
  state.moving = false;
  highlight();
  const row = document.querySelector(`#hazard-list tbody tr[data-id="${Number(id)}"]`);
  if (row) row.scrollIntoView({ block: "nearest" });
  history.replaceState(null, "", "/hazards/" + Number(id) + window.location.search);
  let detail;
  try {
    detail = await review.get("/api/hazards/" + Number(id));
  } catch (e) {
    say(e.message, true);
    return;
  }
  drawDetail(detail);
  const h = detail.hazard;
  if (state.uncertainty) state.uncertainty.remove();
  state.uncertainty = L.circle([h.lat, h.lon], { radius: h.uncertainty_m, color: "#0044ff", weight: 1, fillOpacity: 0.08, interactive: false }).addTo(state.map);
  drawSightings(detail.sightings);
  if (pan) state.map.panTo([h.lat, h.lon]);
}

function drawSightings(sightings) {
  // Each sighting where its frame placed the hazard, coloured per drive, with a thin ray from where the vehicle was:
  // a wide scatter or rays from one side only tell a reviewer how far to trust the position.
  if (state.sightings) state.sightings.remove();
  state.sightings = L.layerGroup().addTo(state.map);
  const drives = [...new Set(sightings.map((s) => s.drive_id))];
  for (const s of sightings) {
    const colour = DRIVE_COLOURS[drives.indexOf(s.drive_id) % DRIVE_COLOURS.length];
    if (s.vehicle_lat !== null && s.vehicle_lon !== null) {
      L.polyline([[s.vehicle_lat, s.vehicle_lon], [s.lat, s.lon]], { color: colour, weight: 1, opacity: 0.5, interactive: false, className: "sighting-ray" }).addTo(state.sightings);
    }
    L.circleMarker([s.lat, s.lon], { radius: 3, color: colour, weight: 1, fillOpacity: 0.9, className: "sighting-marker" })
      .bindTooltip(review.el("span", {}, `${review.time(s.utc)} ${s.drive_id}: conf. ${review.number(s.confidence)}, ${review.number(s.range_m, 1)} m ahead`))
      .addTo(state.sightings);
  }
}

function field(label, value) {
  return [review.el("dt", {}, label), review.el("dd", {}, value === null || value === undefined ? "" : value)];
}

function sightingsChart(sightings) {
  // Confidence of each sighting over time, one dot per sighting, coloured per drive.
  const width = 300, height = 90, pad = 20;
  const chart = review.svg("svg", { width, height, class: "sightings-chart", role: "img", "aria-label": "sightings over time" });
  if (!sightings.length) return chart;
  const t0 = Math.min(...sightings.map((s) => s.utc)), t1 = Math.max(...sightings.map((s) => s.utc));
  const drives = [...new Set(sightings.map((s) => s.drive_id))];
  chart.append(review.svg("line", { x1: pad, y1: height - pad, x2: width - 5, y2: height - pad, stroke: "#888" }));
  chart.append(review.svg("text", { x: 2, y: 12, "font-size": 10 }, "conf."));
  for (const s of sightings) {
    const x = pad + ((s.utc - t0) / Math.max(t1 - t0, 1)) * (width - pad - 10);
    const y = height - pad - s.confidence * (height - pad - 10);
    const dot = review.svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: DRIVE_COLOURS[drives.indexOf(s.drive_id) % DRIVE_COLOURS.length] });
    dot.append(review.svg("title", {}, `${review.time(s.utc)} ${s.drive_id} ${review.number(s.confidence)}`));
    chart.append(dot);
  }
  chart.append(review.svg("text", { x: pad, y: height - 4, "font-size": 10 }, review.time(t0)));
  return chart;
}

function drawDetail(detail) {
  const h = detail.hazard;
  const panel = $("detail");
  panel.hidden = false;
  const parts = [
    review.el("h2", {}, `Hazard #${h.id}: ${h.class}`),
    review.el("p", {}, review.el("span", { className: "status " + h.status, id: "detail-status" }, h.status),
      h.merged_into ? ` into #${h.merged_into}` : "", h.position_locked ? " (position set by a reviewer)" : ""),
  ];
  if (detail.photo) {
    parts.push(review.el("img", { className: "evidence", src: detail.photo + "?v=" + encodeURIComponent(h.updated_at), alt: "evidence photo (faces and plates blurred)" }));
  } else {
    parts.push(review.el("p", { className: "muted" }, "No evidence photo."));
  }
  parts.push(review.el("dl", {},
    ...field("Street", h.street || ""),
    ...field("Position", `${review.number(h.lat, 6)}, ${review.number(h.lon, 6)}`),
    ...field("Uncertainty", `± ${review.number(h.uncertainty_m, 1)} m`),
    ...field("Confidence", review.number(h.confidence)),
    ...field("Severity", review.number(h.severity, 0)),
    ...field("Width", h.width_m ? `${review.number(h.width_m)} m` : ""),
    ...field("Sightings", `${h.sighting_count} on ${h.drive_count} drive(s)`),
    ...field("First / last seen", `${review.time(h.first_seen)} / ${review.time(h.last_seen)}`),
    ...field("Misses", h.misses),
  ));
  parts.push(review.el("h3", {}, "106 request"));
  const request = h.service_request_id || h.request_status
    ? `${h.service_request_id || "(token pending)"}: ${h.request_status}${h.opened_at ? ", opened " + review.time(h.opened_at) : ""}${h.closed_at ? ", closed " + review.time(h.closed_at) : ""}`
    : h.outbox_state ? `queued (${h.outbox_state}${h.last_error ? ": " + h.last_error : ""})` : "none";
  parts.push(review.el("p", { id: "detail-request" }, request));
  if (h.service_notice) parts.push(review.el("p", { className: "notice", id: "detail-notice" }, "106: " + h.service_notice));
  if (h.status_notes) parts.push(review.el("p", { className: "notes", id: "detail-notes" }, h.status_notes));
  parts.push(review.el("h3", {}, "Sightings over time"), sightingsChart(detail.sightings));
  parts.push(review.el("table", { className: "sightings" },
    review.el("thead", {}, review.el("tr", {}, ...["time", "drive", "conf.", "range m", "± m"].map((t) => review.el("th", {}, t)))),
    review.el("tbody", {}, ...detail.sightings.map((s) => review.el("tr", {},
      review.el("td", {}, review.time(s.utc)), review.el("td", {}, s.drive_id), review.el("td", {}, review.number(s.confidence)),
      review.el("td", {}, review.number(s.range_m, 1)), review.el("td", {}, review.number(s.uncertainty_m, 1))))),
  ));
  if (detail.merged_from.length) parts.push(review.el("p", {}, "Merged from: " + detail.merged_from.map((i) => "#" + i).join(", ")));
  if (state.me.role === "reviewer") parts.push(decisionForm(h));
  parts.push(review.el("h3", {}, "Audit trail"));
  parts.push(review.el("ol", { className: "events" }, ...detail.events.map((e) =>
    review.el("li", {}, review.el("span", { className: "when" }, review.time(e.at)), " ",
      review.el("strong", { className: "actor" }, e.actor), " ", e.action, " ", review.el("span", { className: "event-detail" }, e.detail || "")))));
  panel.replaceChildren(...parts);
}

function decisionForm(h) {
  const note = review.el("input", { type: "text", id: "note", placeholder: "note (optional)", maxLength: 2000 });
  const target = review.el("input", { type: "number", id: "merge-target", placeholder: "hazard #", min: 1 });
  const act = (action, extra = {}) => decide(h.id, { action, note: note.value || null, ...extra });
  const button = (id, label, action, extra) => review.el("button", { type: "button", id, on: { click: () => act(action, extra) } }, label);
  return review.el("div", { className: "decisions" },
    review.el("h3", {}, "Decision"),
    note,
    review.el("div", {},
      button("confirm", "Confirm", "confirm"),
      button("reject", "Reject (false alarm)", "reject"),
      button("repaired", "Mark repaired", "mark_repaired"),
      button("open-request", "Open 106 request now", "open_request"),
      review.el("button", { type: "button", id: "move", on: { click: () => startMove() } }, "Move…")),
    review.el("div", {},
      "Merge this hazard into ", target,
      review.el("button", { type: "button", id: "merge", on: { click: () => act("merge", { target: Number(target.value) }) } }, "Merge")),
  );
}

function startMove() {
  state.moving = true;
  say("Click the map where the hazard really is (Esc cancels).");
}

async function decide(id, body) {
  try {
    const outcome = await review.post(`/api/hazards/${Number(id)}/decision`, body);
    say(`#${outcome.hazard_id}: ${outcome.action} done (${outcome.status})`);
    await loadHazards();
    await select(outcome.hazard_id, false);
  } catch (e) {
    say(e.message, true);
  }
}

async function loadDrives() {
  const data = await review.get("/api/drives");
  const select = $("drive");
  for (const d of data.drives) select.append(review.el("option", { value: d.id }, `${d.id} (${d.hazards})`));
  if (!state.me.map.tile_url && data.tracks.features.length) {
    // No basemap: the driven tracks stand in for the street network.
    L.geoJSON(data.tracks, { style: { color: "#777", weight: 3, opacity: 0.8, className: "drive-track" }, interactive: false }).addTo(state.map);
    if (!state.hazards.length) state.map.fitBounds(L.geoJSON(data.tracks).getBounds().pad(0.1));
  }
}

function filterBoxes(id, name, values) {
  const set = $(id);
  for (const value of values) {
    set.append(review.el("label", {}, review.el("input", { type: "checkbox", name, value }), " " + value));
  }
}

async function main() {
  state.me = await review.get("/api/me");
  review.csrf = state.me.csrf;
  $("user").textContent = `${state.me.name} (${state.me.role})`;
  filterBoxes("class-filter", "class", state.me.classes);
  filterBoxes("status-filter", "status", state.me.statuses);
  state.map = review.map("map", state.me.map);
  state.map.on("click", (e) => {
    if (state.moving && state.selected !== null) {
      state.moving = false;
      decide(state.selected, { action: "move", lat: e.latlng.lat, lon: e.latlng.lng, note: $("note") ? $("note").value || null : null });
    }
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.moving) { state.moving = false; say(""); } });
  $("filters").addEventListener("change", () => loadHazards().catch((e) => say(e.message, true)));
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("logout").addEventListener("click", async () => {
    await review.post("/api/logout");
    window.location.assign("/login");
  });
  await loadHazards();
  await loadDrives();
  const match = window.location.pathname.match(/^\/hazards\/(\d+)$/);
  if (match) await select(Number(match[1]), true);
  document.body.dataset.ready = "1";
}

main().catch((e) => say(e.message, true));
