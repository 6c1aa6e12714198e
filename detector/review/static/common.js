// Shared helpers for the review pages. Every piece of data reaches the page through textContent or
// attribute setters, never through innerHTML, so text from the store (notes, drive names, request
// notes from the 106 system) can never become markup.
"use strict";

const review = {
  csrf: null,
  lang: document.documentElement.lang,
  locale: document.documentElement.dataset.locale,
  rtl: document.documentElement.dir === "rtl",
  messages: {},
  names: {},
  formats: {
    time: new Intl.DateTimeFormat(document.documentElement.dataset.locale, {
      timeZone: document.documentElement.dataset.timezone, dateStyle: "short", timeStyle: "short",
    }),
    day: new Intl.DateTimeFormat(document.documentElement.dataset.locale, { timeZone: "UTC", dateStyle: "medium" }),
    dayOfMonth: new Intl.DateTimeFormat(document.documentElement.dataset.locale, { timeZone: "UTC", day: "numeric", month: "short" }),
  },

  /** Build an element: el("td", {className: "x", dataset: {id: 3}}, "text", child). */
  el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  svg(tag, attrs = {}, text = null) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== null) node.textContent = String(text);
    return node;
  },

  async get(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
      throw new Error(review.t("Signed out."));
    }
    if (!response.ok) throw new Error(await review.problem(response));
    return response.json();
  },

  async post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": review.csrf || "" },
      body: JSON.stringify(body || {}),
    });
    if (!response.ok) throw new Error(await review.problem(response));
    return response.json();
  },

  async problem(response) {
    try {
      const data = await response.json();
      return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  },

  /** Epoch seconds or ISO text -> date and time in the city's time zone, the way the page's locale writes them. */
  time(value) {
    if (value === null || value === undefined || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return review.formats.time.format(date);
  },

  /** "2026-06-01" (a day of the city's calendar) -> that day, the locale's way (short: without the year). */
  day(iso, short = false) {
    const date = new Date(iso + "T12:00:00Z");
    if (Number.isNaN(date.getTime())) return String(iso);
    return (short ? review.formats.dayOfMonth : review.formats.day).format(date);
  },

  number(value, digits = 2, least = digits) {
    if (value === null || value === undefined) return "";
    return new Intl.NumberFormat(review.locale, { minimumFractionDigits: least, maximumFractionDigits: digits }).format(value);
  },

  /** Data (a street, a drive id, a name) as it is, isolated so its direction cannot reorder the text around it. */
  data(value, props = {}) {
    return review.el("bdi", props, value === null || value === undefined ? "" : value);
  },

  /** Data inside plain text (an option, an SVG title), isolated by Unicode's first-strong isolate marks. */
  isolated(value) {
    return "\u2068" + String(value) + "\u2069";
  },

  showUser(me) {
    document.getElementById("user").replaceChildren(review.data(me.name), ` (${review.name("role", me.role)})`);
  },

  /** The page's messages and names (/i18n/<lang>.json, from the server's catalogs); call before review.t. */
  async loadMessages() {
    const response = await fetch(`/i18n/${encodeURIComponent(review.lang)}.json`, { credentials: "same-origin" });
    const catalog = await response.json();
    review.messages = catalog.messages;
    review.names = catalog.names;
  },

  /** The translation of a message, its {name} placeholders filled with values (numbers the locale's way). */
  t(msgid, values = {}) {
    const text = review.messages[msgid] || msgid;
    return text.replace(/\{(\w+)\}/g, (whole, name) => {
      if (!(name in values)) return whole;
      const value = values[name];
      return typeof value === "number" ? new Intl.NumberFormat(review.locale).format(value) : String(value);
    });
  },

  /** The translated name of a hazard class, status, role or event; one not known here shows as it is. */
  name(kind, value) {
    const names = review.names[kind];
    return names && value in names ? names[value] : value;
  },

  colours: { candidate: "#e69f00", held: "#cc79a7", confirmed: "#d55e00", rejected: "#999999", possibly_repaired: "#56b4e9",
             repaired: "#009e73", merged: "#cccccc" },

  /** A Leaflet map with the configured basemap, or none (the caller draws the driven tracks). */
  map(id, config) {
    // The controls mirror with the page: zoom at the start of the line, attribution at its end.
    const map = L.map(id, { preferCanvas: false, zoomControl: false, attributionControl: false });
    L.control.zoom({ position: review.rtl ? "topright" : "topleft", zoomInTitle: review.t("Zoom in"), zoomOutTitle: review.t("Zoom out") }).addTo(map);
    L.control.attribution({ position: review.rtl ? "bottomleft" : "bottomright" }).addTo(map);
    if (config && config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 20, attribution: config.attribution || "", className: "basemap-tiles" }).addTo(map);
    } else if (config && config.wms_url) {
      L.tileLayer.wms(config.wms_url, { layers: config.wms_layers, format: "image/jpeg", maxZoom: 20,
        attribution: config.attribution || "", className: "basemap-tiles" }).addTo(map);
    }
    map.setView([31.25, 34.79], 14);
    return map;
  },

  /** Fit the map to what it shows; one point (or points close together) opens at street level, not at the
   * deepest zoom, so a lone marker keeps its size and the zoom buttons both work. */
  fit(map, bounds) {
    if (bounds.isValid()) map.fitBounds(bounds.pad(0.2), { maxZoom: 17, animate: false }); // at load: no zoom animation
  },

  /** The city's own layers under everything (the vector basemap): other layers first, then the streets, each
   * street named on hover and once on the map. ``style(feature)`` styles a street (coverage colours). */
  cityLayers(map, drawn, style = null) {
    const pane = map.createPane("city");
    pane.style.zIndex = 350; // above tiles, below the hazards
    for (const layer of drawn.layers || []) {
      L.geoJSON(layer.features, {
        pane: "city", interactive: false,
        style: { color: "#8a8f98", weight: 1, fillColor: "#d8dbe0", fillOpacity: 0.5, className: "basemap-feature" },
        pointToLayer: (f, at) => L.circleMarker(at, { pane: "city", radius: 2, color: "#6b7280", weight: 1,
          fillOpacity: 0.6, className: "basemap-feature" }),
      }).addTo(map);
    }
    if (!drawn.streets) return null;
    const base = { color: "#b8bec8", weight: 7, opacity: 1, lineCap: "round", className: "basemap-street" };
    const streets = L.geoJSON(drawn.streets, {
      pane: "city",
      style: (f) => ({ ...base, ...(style ? style(f) : {}) }),
      onEachFeature: (f, line) => line.bindTooltip(review.el("bdi", {}, f.properties.name), { sticky: true }),
    }).addTo(map);
    const longest = new Map(); // one label per street name, on its longest piece
    streets.eachLayer((line) => {
      const name = line.feature.properties.name;
      const points = line.getLatLngs().flat(2);
      let length = 0;
      for (let i = 1; i < points.length; i++) length += points[i - 1].distanceTo(points[i]);
      if (!longest.has(name) || longest.get(name).length < length) longest.set(name, { length, points });
    });
    for (const [name, { points }] of longest) {
      const middle = points[Math.floor((points.length - 1) / 2)], next = points[Math.min(Math.floor((points.length - 1) / 2) + 1, points.length - 1)];
      const at = L.latLng((middle.lat + next.lat) / 2, (middle.lng + next.lng) / 2);
      L.tooltip({ permanent: true, direction: "center", className: "street-label", pane: "city" })
        .setLatLng(at).setContent(review.el("bdi", {}, name)).addTo(map);
    }
    return streets;
  },
};
