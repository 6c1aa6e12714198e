// Shared helpers for the review pages. Every piece of data reaches the page through textContent or
// attribute setters, never through innerHTML, so text from the store (notes, drive names, request
// notes from the 106 system) can never become markup.
"use strict";

const review = {
  csrf: null,

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
      throw new Error("signed out");
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

  /** Epoch seconds or ISO text -> "2026-06-01 07:30" (local time of the browser). */
  time(value) {
    if (value === null || value === undefined || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  },

  number(value, digits = 2) {
    return value === null || value === undefined ? "" : Number(value).toFixed(digits);
  },

  colours: { candidate: "#e69f00", confirmed: "#d55e00", rejected: "#999999", possibly_repaired: "#56b4e9",
             repaired: "#009e73", merged: "#cccccc" },

  /** A Leaflet map with the configured basemap, or none (the caller draws the driven tracks). */
  map(id, config) {
    const map = L.map(id, { preferCanvas: false });
    if (config && config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 20, attribution: config.attribution || "" }).addTo(map);
    }
    map.setView([31.25, 34.79], 14);
    return map;
  },
};
