// The public status map: confirmed hazards and when their 106 request was opened; nothing else.
"use strict";

async function main() {
  await review.loadMessages();
  const response = await fetch("/api/public/hazards");
  const data = await response.json();
  const map = review.map("map", data.map);
  review.cityLayers(map, data.basemap);
  if (!data.map.tile_url && !data.basemap.streets && data.streets.length) {
    L.geoJSON({ type: "GeometryCollection", geometries: data.streets }, { style: { color: "#888", weight: 3, className: "street" }, interactive: false }).addTo(map);
  }
  const names = { pothole: review.t("Pothole"), fallen_sign: review.t("Fallen traffic sign") };
  const markers = [];
  const rows = [];
  for (const h of data.hazards) {
    const label = names[h.class] || h.class;
    const opened = h.request_opened_at ? review.t("reported {time}", { time: review.time(h.request_opened_at) }) : review.t("being reported");
    const marker = L.circleMarker([h.lat, h.lon], { radius: 7, color: "#222", weight: 2, fillColor: "#d55e00", fillOpacity: 0.9, className: "public-marker" });
    marker.bindTooltip(review.el("span", {}, `${label}: ${opened}`));
    marker.addTo(map);
    markers.push(marker);
    rows.push(review.el("tr", {}, review.el("td", {}, label),
      review.el("td", {}, h.request_opened_at ? review.time(h.request_opened_at) : review.t("being reported"))));
  }
  if (!rows.length) rows.push(review.el("tr", { className: "empty" }, review.el("td", { colSpan: 2 }, review.t("No known hazards."))));
  document.querySelector("#public-list tbody").replaceChildren(...rows);
  document.getElementById("count").textContent = review.t("Known hazards: {count}", { count: data.hazards.length });
  if (markers.length) review.fit(map, L.featureGroup(markers).getBounds());
  window.publicMarkers = markers; // read by the end-to-end tests
  document.body.dataset.ready = "1";
}

main().catch((e) => { document.getElementById("message").textContent = e.message; });
