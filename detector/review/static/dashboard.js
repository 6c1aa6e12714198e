// The morning dashboard: tiles of figures, a stacked bar chart per day, tables per day, week and neighbourhood.
"use strict";

const PALETTE = ["#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

function set(name, value) {
  for (const node of document.querySelectorAll(`[data-figure="${name}"]`)) node.textContent = value === null ? "–" : String(value);
}

function countsTable(id, rows, classes, label) {
  const head = review.el("tr", {}, review.el("th", {}, label), ...classes.map((c) => review.el("th", {}, c)), review.el("th", {}, "total"),
    review.el("th", {}, "drives"), review.el("th", {}, "km patrolled"));
  const body = rows.map((r) => review.el("tr", { dataset: { period: r.period } },
    review.el("td", {}, r.period), ...classes.map((c) => review.el("td", { dataset: { class: c } }, r.counts[c] || 0)),
    review.el("td", { className: "total" }, r.total), review.el("td", { className: "drives" }, r.drives),
    review.el("td", { className: "km" }, review.number(r.km, 1))));
  document.getElementById(id).replaceChildren(review.el("thead", {}, head), review.el("tbody", {}, ...body));
}

function dayChart(rows, classes) {
  const width = 640, height = 180, pad = 24;
  const max = Math.max(1, ...rows.map((r) => r.total));
  const chart = review.svg("svg", { width, height, role: "img", "aria-label": "hazards found per day by class" });
  const band = (width - pad) / Math.max(rows.length, 1);
  rows.forEach((r, i) => {
    let y = height - pad;
    classes.forEach((c, k) => {
      const h = ((r.counts[c] || 0) / max) * (height - 2 * pad);
      if (h > 0) {
        const bar = review.svg("rect", { x: pad + i * band + 2, y: y - h, width: Math.max(band - 4, 1), height: h, fill: PALETTE[k % PALETTE.length] });
        bar.append(review.svg("title", {}, `${r.period} ${c}: ${r.counts[c]}`));
        chart.append(bar);
        y -= h;
      }
    });
    if (rows.length <= 14 || i % Math.ceil(rows.length / 14) === 0) {
      chart.append(review.svg("text", { x: pad + i * band + 2, y: height - 8, "font-size": 9 }, r.period.slice(5)));
    }
  });
  chart.append(review.svg("text", { x: 2, y: 12, "font-size": 10 }, String(max)));
  classes.forEach((c, k) => {
    chart.append(review.svg("rect", { x: width - 120, y: 8 + k * 14, width: 10, height: 10, fill: PALETTE[k % PALETTE.length] }));
    chart.append(review.svg("text", { x: width - 106, y: 17 + k * 14, "font-size": 10 }, c));
  });
  document.getElementById("day-chart").replaceChildren(chart);
}

async function main() {
  const me = await review.get("/api/me");
  document.getElementById("user").textContent = `${me.name} (${me.role})`;
  const d = await review.get("/api/dashboard");
  set("found", d.found);
  set("km", review.number(d.km_patrolled, 1));
  set("drives", d.drives);
  set("open", d.requests.open);
  set("closed", d.requests.closed);
  set("queued", d.requests.queued);
  set("failed", d.requests.failed);
  set("possibly_repaired", d.possibly_repaired);
  set("to_request", d.hours_to_request.median);
  set("to_request_n", d.hours_to_request.count);
  set("to_close", d.hours_to_close.median);
  set("to_close_n", d.hours_to_close.count);
  dayChart(d.per_day, d.classes);
  countsTable("per-day", d.per_day, d.classes, "day");
  countsTable("per-week", d.per_week, d.classes, "week of");
  if (d.neighbourhoods) {
    document.getElementById("neighbourhoods").hidden = false;
    const head = review.el("tr", {}, ...["neighbourhood", ...d.classes, "found", "open requests", "closed requests", "possibly repaired"].map((t) => review.el("th", {}, t)));
    const body = d.neighbourhoods.map((n) => review.el("tr", { dataset: { name: n.name } }, review.el("td", {}, n.name),
      ...d.classes.map((c) => review.el("td", {}, n.counts[c] || 0)), review.el("td", { className: "found" }, n.found),
      review.el("td", {}, n.open_requests), review.el("td", {}, n.closed_requests), review.el("td", {}, n.possibly_repaired)));
    document.getElementById("per-neighbourhood").replaceChildren(review.el("thead", {}, head), review.el("tbody", {}, ...body));
  }
  document.body.dataset.ready = "1";
}

main().catch((e) => { document.getElementById("message").textContent = e.message; });
