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
  streets: null, // the city's street layer, coloured by when each street was last patrolled
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
  if (!state.hazards.length) {
    body.replaceChildren(review.el("tr", { className: "empty" }, review.el("td", { colSpan: 6 }, review.t("No hazard matches the filters."))));
    $("count").textContent = review.t("Hazards shown: {count}", { count: 0 });
    return;
  }
  body.replaceChildren(
    ...state.hazards.map((h) =>
      review.el(
        "tr",
        { dataset: { id: h.id }, className: h.id === state.selected ? "selected" : "", on: { click: () => select(h.id, true) } },
        review.el("td", {}, h.id),
        review.el("td", {}, review.name("class", h.class), h.street ? review.data(h.street, { className: "street" }) : ""),
        review.el("td", {}, review.el("span", { className: "status " + h.state, title: h.held_reason || "" }, review.name("status", h.state)),
          h.held_reason ? review.el("span", { className: "held-reason" }, h.held_reason) : ""),
        review.el("td", {}, review.number(h.confidence)),
        review.el("td", {}, review.number(h.severity, 0)),
        review.el("td", {}, review.time(h.first_seen)),
      ),
    ),
  );
  $("count").textContent = review.t("Hazards shown: {count}", { count: state.hazards.length });
}

function drawMarkers() {
  for (const marker of state.markers.values()) marker.remove();
  state.markers.clear();
  for (const h of state.hazards) {
    const marker = L.circleMarker([h.lat, h.lon], {
      radius: 7,
      weight: 2,
      color: "#222",
      fillColor: review.colours[h.state] || "#333",
      fillOpacity: 0.9,
      className: "hazard-marker",
    });
    // An element: a string would be HTML.
    marker.bindTooltip(review.el("span", {}, `#${h.id} ${review.name("class", h.class)} (${review.name("status", h.state)})`));
    marker.on("click", () => select(h.id, false));
    marker.addTo(state.map);
    state.markers.set(h.id, marker);
  }
  highlight();
  if (!state.fitted && state.hazards.length) {
    review.fit(state.map, L.latLngBounds(state.hazards.map((h) => [h.lat, h.lon])));
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
      .bindTooltip(review.el("span", {}, review.time(s.utc), " ", review.data(s.drive_id), ": ",
        review.t("conf. {confidence}, {range} m ahead", { confidence: review.number(s.confidence), range: review.number(s.range_m, 1) })))
      .addTo(state.sightings);
  }
}

function field(label, value) {
  return [review.el("dt", {}, label), review.el("dd", {}, value === null || value === undefined ? "" : value)];
}

function sightingsChart(sightings) {
  // Confidence of each sighting over time, one dot per sighting, coloured per drive.
  const width = 300, height = 90, pad = 20;
  const chart = review.svg("svg", { width, height, class: "sightings-chart", role: "img", "aria-label": review.t("Sightings over time") });
  if (!sightings.length) return chart;
  const t0 = Math.min(...sightings.map((s) => s.utc)), t1 = Math.max(...sightings.map((s) => s.utc));
  const drives = [...new Set(sightings.map((s) => s.drive_id))];
  const across = (x) => (review.rtl ? width - x : x); // time runs with the reading direction
  chart.append(review.svg("line", { x1: across(pad), y1: height - pad, x2: across(width - 5), y2: height - pad, stroke: "#888" }));
  chart.append(review.svg("text", { x: across(2), y: 12, "font-size": 10, "text-anchor": "start", direction: review.rtl ? "rtl" : "ltr" }, review.t("conf.")));
  for (const s of sightings) {
    const x = across(pad + ((s.utc - t0) / Math.max(t1 - t0, 1)) * (width - pad - 10));
    const y = height - pad - s.confidence * (height - pad - 10);
    const dot = review.svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: DRIVE_COLOURS[drives.indexOf(s.drive_id) % DRIVE_COLOURS.length] });
    dot.append(review.svg("title", {}, `${review.time(s.utc)} ${review.isolated(s.drive_id)} ${review.number(s.confidence)}`));
    chart.append(dot);
  }
  chart.append(review.svg("text", { x: across(pad), y: height - 4, "font-size": 10, "text-anchor": "start", direction: review.rtl ? "rtl" : "ltr" }, review.time(t0)));
  return chart;
}

function drawDetail(detail) {
  const h = detail.hazard;
  const shown = h.held_reason ? "held" : h.status; // the one vocabulary: a held candidate is "held for review"
  const panel = $("detail");
  panel.hidden = false;
  const parts = [
    review.el("h2", {}, review.t("Hazard #{id}: {class}", { id: String(h.id), class: review.name("class", h.class) })),
    review.el("p", {}, review.el("span", { className: "status " + shown, id: "detail-status" }, review.name("status", shown)),
      h.held_reason ? review.el("span", { className: "held-reason", id: "detail-held" }, h.held_reason) : "",
      h.merged_into ? " " + review.t("into #{id}", { id: String(h.merged_into) }) : "",
      h.position_locked ? " " + review.t("(position set by a reviewer)") : ""),
  ];
  if (detail.photo) {
    // Shown pulsing until it has loaded (one not made at merge is made now, which takes a moment).
    parts.push(review.el("img", { className: "evidence", src: detail.photo + "?v=" + encodeURIComponent(h.updated_at),
      alt: review.t("Evidence photo (faces and plates blurred)"), on: { load: (e) => e.target.classList.add("loaded") } }));
  } else {
    parts.push(review.el("p", { className: "muted" }, review.t("No evidence photo.")));
  }
  parts.push(review.el("dl", {},
    ...field(review.t("Street"), h.street ? review.data(h.street) : ""),
    ...field(review.t("Position"), review.data(`${review.number(h.lat, 6)}, ${review.number(h.lon, 6)}`, { dir: "ltr" })), // lat, lon
    ...field(review.t("Uncertainty"), review.t("± {metres} m", { metres: review.number(h.uncertainty_m, 1) })),
    ...field(review.t("Confidence"), review.number(h.confidence)),
    ...field(review.t("Severity"), review.number(h.severity, 0)),
    ...field(review.t("Width"), h.width_m ? review.t("{metres} m", { metres: review.number(h.width_m) }) : ""),
    ...field(review.t("Sightings"), review.t("{sightings} (drives: {drives})", { sightings: h.sighting_count, drives: h.drive_count })),
    ...field(review.t("First / last seen"), `${review.time(h.first_seen)} / ${review.time(h.last_seen)}`),
    ...field(review.t("Misses"), review.number(h.misses, 0)),
  ));
  parts.push(review.el("h3", {}, review.t("106 request")), requestLine(h));
  if (h.service_notice) parts.push(review.el("p", { className: "notice", id: "detail-notice" }, "106: ", review.data(h.service_notice, { dir: "auto" })));
  if (h.status_notes) parts.push(review.el("p", { className: "notes", id: "detail-notes", dir: "auto" }, h.status_notes));
  parts.push(review.el("h3", {}, review.t("Sightings over time")), sightingsChart(detail.sightings));
  const fleet = detail.sightings.some((s) => s.vehicle); // a hub's store: which vehicle saw each sighting
  const headings = [review.t("time"), ...(fleet ? [review.t("vehicle")] : []), review.t("drive"), review.t("conf."),
    review.t("range m"), review.t("± m")];
  parts.push(review.el("table", { className: "sightings" },
    review.el("thead", {}, review.el("tr", {}, ...headings.map((t) => review.el("th", {}, t)))),
    review.el("tbody", {}, ...detail.sightings.map((s) => review.el("tr", {},
      review.el("td", {}, review.time(s.utc)),
      ...(fleet ? [review.el("td", {}, review.data(s.vehicle || "", { className: "vehicle" }))] : []),
      review.el("td", {}, review.data(s.drive_id, { className: "drive" })),
      review.el("td", {}, review.number(s.confidence)),
      review.el("td", {}, review.number(s.range_m, 1)), review.el("td", {}, review.number(s.uncertainty_m, 1))))),
  ));
  if (detail.merged_from.length) {
    parts.push(review.el("p", {}, review.t("Merged from: {hazards}", { hazards: detail.merged_from.map((i) => "#" + i).join(", ") })));
  }
  if (state.me.role === "reviewer") parts.push(decisionForm(h));
  parts.push(review.el("h3", {}, review.t("Audit trail")));
  parts.push(review.el("ol", { className: "events" }, ...detail.events.map((e) =>
    review.el("li", {}, review.el("span", { className: "when" }, review.time(e.at)), " ",
      e.hazard_id !== h.id ? "#" + e.hazard_id + " " : "", // the history of a hazard merged into this one
      review.data(e.actor, { className: "actor" }), " ", review.el("span", { className: "action" }, review.name("action", e.action)), " ",
      review.data(e.detail || "", { className: "event-detail", dir: "auto" })))));
  panel.replaceChildren(...parts);
}

function requestLine(h) {
  // The request's number and the 106 system's own texts are data; the words around them are ours.
  const line = review.el("p", { id: "detail-request" });
  if (h.service_request_id || h.request_status) {
    line.append(h.service_request_id ? review.data(h.service_request_id) : review.t("(token pending)"), ": ",
      review.name("status", h.request_status));
    if (h.opened_at) line.append(", ", review.t("opened {time}", { time: review.time(h.opened_at) }));
    if (h.closed_at) line.append(", ", review.t("closed {time}", { time: review.time(h.closed_at) }));
  } else if (h.outbox_state) {
    line.append(review.t("queued"), " (", review.name("outbox", h.outbox_state), h.last_error ? ": " : "",
      h.last_error ? review.data(h.last_error, { dir: "auto" }) : "", ")");
  } else {
    line.append(review.t("none"));
  }
  return line;
}

function decisionForm(h) {
  const note = review.el("input", { type: "text", id: "note", placeholder: review.t("note (optional)"), maxLength: 2000, dir: "auto" });
  const target = review.el("input", { type: "number", id: "merge-target", placeholder: review.t("hazard #"), min: 1 });
  const act = (action, extra = {}) => decide(h.id, { action, note: note.value || null, ...extra });
  const button = (id, label, action, extra) => review.el("button", { type: "button", id, on: { click: () => act(action, extra) } }, label);
  return review.el("div", { className: "decisions" },
    review.el("h3", {}, review.t("Decision")),
    note,
    review.el("div", {},
      button("confirm", review.t("Confirm"), "confirm"),
      button("reject", review.t("Reject (false alarm)"), "reject"),
      button("repaired", review.t("Mark repaired"), "mark_repaired"),
      button("open-request", review.t("Open 106 request now"), "open_request"),
      review.el("button", { type: "button", id: "move", on: { click: () => startMove() } }, review.t("Move…"))),
    review.el("div", {},
      review.t("Merge this hazard into"), " ", target,
      review.el("button", { type: "button", id: "merge", on: { click: () => act("merge", { target: Number(target.value) }) } }, review.t("Merge"))),
  );
}

function startMove() {
  state.moving = true;
  say(review.t("Click the map where the hazard really is (Esc cancels)."));
}

async function decide(id, body) {
  try {
    const outcome = await review.post(`/api/hazards/${Number(id)}/decision`, body);
    say(review.t("#{id}: {action} ({status})", { id: String(outcome.hazard_id), action: review.name("action", outcome.action), status: review.name("status", outcome.status) }));
    await loadHazards();
    await select(outcome.hazard_id, false);
  } catch (e) {
    say(e.message, true);
  }
}

async function loadDrives() {
  const data = await review.get("/api/drives");
  const select = $("drive");
  for (const d of data.drives) select.append(review.el("option", { value: d.id }, `${review.isolated(d.id)} (${review.number(d.hazards, 0)})`));
  if (data.tracks.features.length) {
    // The driven tracks, over the city's streets (or standing in for them when the city gave none).
    L.geoJSON(data.tracks, { style: { color: "#555", weight: 2, opacity: 0.7, dashArray: "4 4", className: "drive-track" }, interactive: false }).addTo(state.map);
    if (!state.hazards.length) review.fit(state.map, L.geoJSON(data.tracks).getBounds());
  }
}

async function loadSigns() {
  // The sign inventory (docs/signs.md): standing signs as filled blue dots, those found down as orange rings, those
  // gone missing as red rings.
  const data = await review.get("/api/signs");
  if (!data.features.length) return;
  L.geoJSON(data, {
    pointToLayer: (f, latlng) => {
      const status = f.properties.status;
      const colour = { standing: "#2c7bb6", down: "#fdae61", missing: "#d73027" }[status] || "#2c7bb6";
      return L.circleMarker(latlng, { radius: 4, color: colour, weight: 2, fillOpacity: status === "standing" ? 0.7 : 0, className: `sign-marker sign-${status}` });
    },
    onEachFeature: (f, layer) => {
      const id = String(f.properties.id);
      const status = f.properties.status;
      if (status === "missing") layer.bindTooltip(review.t("Sign #{id}: missing", { id }));
      else if (status === "down") layer.bindTooltip(review.t("Sign #{id}: down", { id }));
      else layer.bindTooltip(review.t("Sign #{id}: standing", { id }));
    },
  }).addTo(state.map);
}

const DAY_S = 86400;
// Coverage colours, from just patrolled to never (colour-blind safe, light to dark).
const COVERAGE = [
  { days: 1, colour: "#1a9850", label: () => review.t("patrolled today or yesterday") },
  { days: 7, colour: "#91cf60", label: () => review.t("within a week") },
  { days: 30, colour: "#fdae61", label: () => review.t("within a month") },
  { days: Infinity, colour: "#d73027", label: () => review.t("longer ago") },
];
const NEVER = "#7b3294";

function streetAge(feature) {
  const last = feature.properties.last_driven;
  return last === null || last === undefined ? Infinity : (Date.now() / 1000 - last) / DAY_S;
}

function coverageStyle(feature) {
  if (feature.properties.last_driven === null || feature.properties.last_driven === undefined) {
    return { color: NEVER, dashArray: "12 8", lineCap: "butt" };
  }
  const age = streetAge(feature);
  return { color: COVERAGE.find((c) => age <= c.days).colour, dashArray: null, lineCap: "round" };
}

function showCoverage() {
  // "Not patrolled for N days": only the streets last driven longer ago than that (or never) stay drawn.
  if (!state.streets) return;
  const only = $("unpatrolled").checked;
  const days = Math.max(0, Number($("unpatrolled-days").value) || 0);
  let count = 0;
  state.streets.eachLayer((line) => {
    const stale = streetAge(line.feature) > days;
    if (stale) count += 1;
    line.setStyle({ opacity: !only || stale ? 1 : 0 });
    const element = line.getElement();
    if (element) element.classList.toggle("hidden-street", only && !stale);
  });
  $("unpatrolled-count").textContent = review.t("streets not patrolled for {days} days: {count}", { days, count });
}

function coverageLegend() {
  const legend = L.control({ position: review.rtl ? "bottomright" : "bottomleft" });
  legend.onAdd = () => review.el("div", { className: "legend coverage-legend" },
    review.el("strong", {}, review.t("Last patrolled")),
    ...COVERAGE.map((c) => review.el("div", {}, review.el("span", { className: "swatch", style: `background:${c.colour}` }), c.label())),
    review.el("div", {}, review.el("span", { className: "swatch never", style: `background:${NEVER}` }), review.t("never")));
  legend.addTo(state.map);
}

async function loadBasemap() {
  const drawn = await review.get("/api/basemap");
  state.map = review.map("map", drawn.map);
  state.streets = review.cityLayers(state.map, drawn, coverageStyle);
  if (state.streets) {
    coverageLegend();
    $("unpatrolled-days").value = drawn.map.unpatrolled_days;
    $("coverage").hidden = false;
    for (const id of ["unpatrolled", "unpatrolled-days"]) $(id).addEventListener("input", showCoverage);
    showCoverage();
    review.fit(state.map, state.streets.getBounds());
  }
}

function filterBoxes(id, name, values) {
  const set = $(id);
  for (const value of values) {
    set.append(review.el("label", {}, review.el("input", { type: "checkbox", name, value }), " " + review.name(name, value)));
  }
}

async function main() {
  await review.loadMessages();
  state.me = await review.get("/api/me");
  review.csrf = state.me.csrf;
  review.showUser(state.me);
  filterBoxes("class-filter", "class", state.me.classes);
  filterBoxes("status-filter", "status", state.me.statuses);
  await loadBasemap();
  state.map.on("click", (e) => {
    if (state.moving && state.selected !== null) {
      state.moving = false;
      decide(state.selected, { action: "move", lat: e.latlng.lat, lon: e.latlng.lng, note: $("note") ? $("note").value || null : null });
    }
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.moving) { state.moving = false; say(""); } });
  $("filters").addEventListener("change", (e) => {
    if (!$("coverage").contains(e.target)) loadHazards().catch((error) => say(error.message, true));
  });
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("logout").addEventListener("click", async () => {
    await review.post("/api/logout");
    window.location.assign("/login");
  });
  await loadHazards();
  await loadDrives();
  await loadSigns();
  const match = window.location.pathname.match(/^\/hazards\/(\d+)$/);
  if (match) await select(Number(match[1]), true);
  document.body.dataset.ready = "1";
}

main().catch((e) => say(e.message, true));
