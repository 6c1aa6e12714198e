// The morning dashboard: the service manager's briefing (yesterday's finds, requests past their target, per
// service), tiles of figures, a stacked bar chart per day, tables per day, week and neighbourhood.
"use strict";

const PALETTE = ["#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];
const cell = (value, props = {}) => review.el("td", props, value);
const count = (n) => review.number(n, 0);

function set(name, value) {
  for (const node of document.querySelectorAll(`[data-figure="${name}"]`)) node.textContent = value === null ? "–" : value;
}

function table(id, headings, rows) {
  const head = review.el("tr", {}, ...headings.map((h) => review.el("th", {}, h)));
  // An empty table says so, rather than showing its headings over nothing.
  const body = rows.length ? rows : [review.el("tr", { className: "empty" }, review.el("td", { colSpan: headings.length }, review.t("none")))];
  document.getElementById(id).replaceChildren(review.el("thead", {}, head), review.el("tbody", {}, ...body));
}

function briefing(b) {
  set("found_yesterday", count(b.found.length));
  set("past_target", count(b.past_target.length));
  table("per-service", [review.t("service"), review.t("found yesterday"), review.t("open requests"), review.t("past target")],
    b.services.map((s) => review.el("tr", { dataset: { service: s.service_code } },
      cell(review.data(s.service_code || review.t("(no service)")), { className: "service" }),
      cell(count(s.found_yesterday), { className: "found" }), cell(count(s.open), { className: "open" }),
      cell(count(s.past_target), { className: "late" }))));
  table("found-yesterday", ["#", review.t("class"), review.t("street"), review.t("service")],
    b.found.map((f) => review.el("tr", { dataset: { id: f.id } }, cell(f.id), cell(review.name("class", f.class)),
      cell(f.street ? review.data(f.street) : "", { className: "street-name" }), cell(review.data(f.service_code || "")))));
  table("past-target", ["#", review.t("class"), review.t("street"), review.t("service"), review.t("106 request"),
    review.t("opened"), review.t("days open"), review.t("target (days)")],
    b.past_target.map((r) => review.el("tr", { dataset: { id: r.id } }, cell(r.id), cell(review.name("class", r.class)),
      cell(r.street ? review.data(r.street) : "", { className: "street-name" }), cell(review.data(r.service_code || "")),
      cell(review.data(r.request_id || "")), cell(review.time(r.opened_at)),
      cell(review.number(r.days_open, 1), { className: "days" }), cell(review.number(r.target_days, 0)))));
}

function countsTable(id, rows, classes, label) {
  const headings = [label, ...classes.map((c) => review.name("class", c)), review.t("total"), review.t("drives"), review.t("km patrolled")];
  table(id, headings, rows.map((r) => review.el("tr", { dataset: { period: r.period } },
    cell(review.day(r.period)), ...classes.map((c) => cell(count(r.counts[c] || 0), { dataset: { class: c } })),
    cell(count(r.total), { className: "total" }), cell(count(r.drives), { className: "drives" }),
    cell(review.number(r.km, 1), { className: "km" }))));
}

function dayChart(rows, classes) {
  const width = 640, height = 180, pad = 24;
  const across = (x, w = 0) => (review.rtl ? width - x - w : x); // days run with the reading direction
  const anchor = { "text-anchor": "start", direction: review.rtl ? "rtl" : "ltr" };
  const max = Math.max(1, ...rows.map((r) => r.total));
  const chart = review.svg("svg", { width, height, role: "img", "aria-label": review.t("Hazards found per day, by class") });
  const band = (width - pad) / Math.max(rows.length, 1);
  rows.forEach((r, i) => {
    let y = height - pad;
    classes.forEach((c, k) => {
      const h = ((r.counts[c] || 0) / max) * (height - 2 * pad);
      if (h > 0) {
        const w = Math.max(band - 4, 1);
        const bar = review.svg("rect", { x: across(pad + i * band + 2, w), y: y - h, width: w, height: h, fill: PALETTE[k % PALETTE.length] });
        bar.append(review.svg("title", {}, `${review.day(r.period)} ${review.name("class", c)}: ${count(r.counts[c])}`));
        chart.append(bar);
        y -= h;
      }
    });
    if (rows.length <= 14 || i % Math.ceil(rows.length / 14) === 0) {
      chart.append(review.svg("text", { x: across(pad + i * band + 2), y: height - 8, "font-size": 9, ...anchor }, review.day(r.period, true)));
    }
  });
  chart.append(review.svg("text", { x: across(2), y: 12, "font-size": 10, ...anchor }, count(max)));
  // The legend above the chart, never over its bars.
  const legend = review.el("div", { className: "chart-legend" }, ...classes.map((c, k) => review.el("span", {},
    review.el("span", { className: "swatch", style: `background:${PALETTE[k % PALETTE.length]}` }), review.name("class", c))));
  document.getElementById("day-chart").replaceChildren(legend, chart);
}

function fleet(f) {
  document.getElementById("fleet").hidden = false;
  set("silent", count(f.vehicles.filter((v) => v.silent).length));
  table("vehicles", [review.t("vehicle"), review.t("last contact"), review.t("still queued"), review.t("segments"), review.t("drives"), ""],
    f.vehicles.map((v) => review.el("tr", { dataset: { vehicle: v.name }, className: v.silent ? "silent" : v.revoked ? "revoked" : "" },
      cell(review.data(v.name), { className: "vehicle" }),
      cell(v.last_contact_at ? review.time(v.last_contact_at) : review.t("never"), { className: "contact" }),
      cell(v.queued === null ? "–" : count(v.queued), { className: "queued" }),
      cell(count(v.segments)), cell(count(v.drives)),
      cell(v.revoked ? review.t("revoked") : v.silent ? review.t("silent") : "", { className: "flag" }))));
  table("vehicle-days", [review.t("day"), review.t("vehicle"), review.t("drives"), review.t("km patrolled")],
    f.per_day.map((r) => review.el("tr", { dataset: { day: r.day, vehicle: r.vehicle } }, cell(review.day(r.day)),
      cell(review.data(r.vehicle), { className: "vehicle" }), cell(count(r.drives), { className: "drives" }),
      cell(review.number(r.km, 1), { className: "km" }))));
}

async function main() {
  await review.loadMessages();
  review.showUser(await review.get("/api/me"));
  const d = await review.get("/api/dashboard");
  briefing(d.briefing);
  set("found", count(d.found));
  set("km", review.number(d.km_patrolled, 1));
  set("drives", count(d.drives));
  set("open", count(d.requests.open));
  set("closed", count(d.requests.closed));
  set("queued", count(d.requests.queued));
  set("failed", count(d.requests.failed));
  set("possibly_repaired", count(d.possibly_repaired));
  set("to_request", d.hours_to_request.median === null ? null : review.number(d.hours_to_request.median, 2, 0));
  set("to_request_n", count(d.hours_to_request.count));
  set("to_close", d.hours_to_close.median === null ? null : review.number(d.hours_to_close.median, 2, 0));
  set("to_close_n", count(d.hours_to_close.count));
  dayChart(d.per_day, d.classes);
  countsTable("per-day", d.per_day, d.classes, review.t("day"));
  countsTable("per-week", d.per_week, d.classes, review.t("week of"));
  if (d.fleet) fleet(d.fleet);
  if (d.neighbourhoods) {
    document.getElementById("neighbourhoods").hidden = false;
    table("per-neighbourhood",
      [review.t("neighbourhood"), ...d.classes.map((c) => review.name("class", c)), review.t("found"), review.t("open requests"),
        review.t("closed requests"), review.t("possibly repaired")],
      d.neighbourhoods.map((n) => review.el("tr", { dataset: { name: n.name } },
        cell(review.data(n.name === "(outside every neighbourhood)" ? review.t("(outside every neighbourhood)") : n.name)),
        ...d.classes.map((c) => cell(count(n.counts[c] || 0))), cell(count(n.found), { className: "found" }),
        cell(count(n.open_requests)), cell(count(n.closed_requests)), cell(count(n.possibly_repaired)))));
  }
  document.body.dataset.ready = "1";
}

main().catch((e) => { document.getElementById("message").textContent = e.message; });
