// Escalation dashboard: reads the filters from the URL, fetches /dashboard/api data and draws
// tables and Plotly charts. Every value from the server is inserted as text, never as HTML.
"use strict";

const API = "/dashboard/api/";
const FILTERS = ["from", "to", "team", "reason", "bundle"];
const BOARD_REFRESH_MS = 15000;
const PLOT_CONFIG = { displaylogo: false, responsive: true };

const state = { view: "board", page: 1, sort: "probability", boardTimer: null, clockOffsetMs: 0 };

// ------------------------------------------------------------------------------ helpers

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function percent(value) {
  return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + "\u00a0%";
}

function number(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits === undefined ? 0 : digits);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const sign = seconds < 0 ? "-" : "";
  const total = Math.round(Math.abs(seconds));
  const minutes = Math.floor(total / 60);
  return `${sign}${minutes}:${String(total % 60).padStart(2, "0")}`;
}

function shortTime(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "–";
}

function filterQuery() {
  const params = new URLSearchParams(window.location.search);
  const query = new URLSearchParams();
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) query.set(name, value);
  }
  return query;
}

function showStatus(message) {
  document.getElementById("status").textContent = message || "";
}

async function fetchData(path, query) {
  const response = await fetch(`${API}${path}?${query.toString()}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (response.status === 401) {
    const next = window.location.pathname + window.location.search + window.location.hash;
    window.location.assign(`/dashboard/login?next=${encodeURIComponent(next)}`);
    throw new Error("the session has expired; sign in again");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch (error) {
      // The body was not JSON; the status text is the best message available.
    }
    throw new Error(`${path}: ${detail}`);
  }
  const data = await response.json();
  // Warnings name filter values that match nothing in the log, e.g. a misspelt team.
  if (Array.isArray(data.warnings) && data.warnings.length > 0) {
    showStatus(data.warnings.join(" "));
  }
  return data;
}

function updateCsvLinks() {
  const query = filterQuery();
  for (const link of document.querySelectorAll("a.csv")) {
    const extra = new URLSearchParams(query);
    if (link.dataset.dataset === "board") {
      extra.set("page", String(state.page));
      extra.set("sort", state.sort);
    }
    link.href = `${API}${link.dataset.dataset}.csv?${extra.toString()}`;
  }
}

function renderTable(table, columns, rows, format) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const column of columns) head.appendChild(element("th", column.replaceAll("_", " ")));
  const body = table.createTBody();
  if (rows.length === 0) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = columns.length;
    cell.textContent = "No data in this range.";
    return;
  }
  for (const row of rows) {
    const line = body.insertRow();
    columns.forEach((column, index) => {
      const value = row[index];
      const cell = line.insertCell();
      const shown = format && format[column] ? format[column](value) : value;
      cell.textContent = shown === null || shown === undefined ? "–" : String(shown);
      if (typeof value === "number") cell.className = "number";
    });
  }
}

function column(result, name) {
  const index = result.columns.indexOf(name);
  return result.rows.map((row) => row[index]);
}

function plot(id, traces, layout) {
  const base = { margin: { t: 10, r: 50, b: 50, l: 50 }, legend: { orientation: "h", y: -0.2 } };
  window.Plotly.react(document.getElementById(id), traces, Object.assign(base, layout), PLOT_CONFIG);
}

// ------------------------------------------------------------------------------ filters

function fillFilterForm(options) {
  const form = document.getElementById("filters");
  const params = new URLSearchParams(window.location.search);
  for (const [name, values] of [["team", options.teams], ["reason", options.reasons],
    ["bundle", options.bundles]]) {
    const select = form.elements[name];
    for (const value of values) {
      const option = element("option", value);
      option.value = value;
      select.appendChild(option);
    }
    select.value = params.get(name) || "";
  }
  for (const name of ["from", "to"]) {
    const value = params.get(name);
    form.elements[name].value = value ? value.slice(0, 16) : "";
  }
}

function applyFilters(event) {
  event.preventDefault();
  const form = document.getElementById("filters");
  const query = new URLSearchParams();
  for (const name of FILTERS) {
    const value = form.elements[name].value;
    if (!value) continue;
    // datetime-local has no zone; the form labels it UTC, so the Z makes that explicit.
    query.set(name, name === "from" || name === "to" ? `${value}:00Z` : value);
  }
  window.history.replaceState(null, "", `?${query.toString()}${window.location.hash}`);
  state.page = 1;
  loadView();
}

function resetFilters() {
  window.history.replaceState(null, "", `?${window.location.hash}`);
  const form = document.getElementById("filters");
  form.reset();
  state.page = 1;
  loadView();
}

// ------------------------------------------------------------------------------ board

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "60");
  svg.setAttribute("height", "16");
  svg.setAttribute("class", "sparkline");
  if (points.length < 2) return svg;
  const path = points.map((value, index) =>
    `${(index / (points.length - 1)) * 58 + 1},${15 - value * 14}`).join(" ");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", path);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#2458a6");
  svg.appendChild(line);
  return svg;
}

function statusBadge(status) {
  const classes = { "waiting for agent": "waiting", "with agent": "with-agent",
    "prepare agent": "prepare", assistant: "assistant" };
  return element("span", status, `badge ${classes[status] || "assistant"}`);
}

function slaCell(row) {
  const cell = element("td");
  if (!row.sla_deadline) {
    cell.textContent = "–";
    return cell;
  }
  cell.dataset.deadline = row.sla_deadline;
  cell.className = "sla";
  return cell;
}

function tickCountdowns() {
  const now = Date.now() + state.clockOffsetMs;
  for (const cell of document.querySelectorAll("td.sla")) {
    const left = (Date.parse(cell.dataset.deadline) - now) / 1000;
    cell.textContent = left >= 0 ? `${duration(left)} left` : `${duration(-left)} overdue`;
    cell.classList.toggle("overdue", left < 0);
  }
}

function boardRow(row) {
  const line = element("tr");
  line.dataset.conversationId = row.conversation_id;
  line.appendChild(element("td", row.conversation_id));
  const status = element("td");
  status.appendChild(statusBadge(row.status));
  line.appendChild(status);
  line.appendChild(element("td", percent(row.escalation_probability), "number"));

  const trend = element("td");
  if (row.trend !== null) {
    // Changes under half a percentage point count as flat.
    let arrow = "▶";
    let direction = "";
    if (row.trend > 0.005) {
      arrow = "▲";
      direction = "up";
    } else if (row.trend < -0.005) {
      arrow = "▼";
      direction = "down";
    }
    trend.appendChild(element("span", `${arrow} ${(row.trend * 100).toFixed(1)}`, direction));
  }
  trend.appendChild(sparkline(row.probability_history));
  line.appendChild(trend);

  line.appendChild(element("td", row.tier));
  line.appendChild(slaCell(row));
  const signals = element("td");
  for (const signal of row.signals) {
    const tag = element("span", signal.code, "signal");
    tag.title = `${signal.tier}: ${signal.description}`;
    signals.appendChild(tag);
  }
  line.appendChild(signals);

  const team = element("td");
  if (row.team) {
    team.textContent = row.agent ? `${row.team} / ${row.agent}` : `${row.team} (${row.routing_status})`;
  } else if (row.recommended_team) {
    team.appendChild(element("span", `recommended: ${row.recommended_team}`, "recommended"));
  }
  line.appendChild(team);
  line.appendChild(element("td", row.bundle));
  line.appendChild(element("td", row.turns, "number"));
  line.appendChild(element("td", shortTime(row.last_activity)));
  return line;
}

async function loadBoard() {
  const query = filterQuery();
  query.set("page", String(state.page));
  query.set("sort", state.sort);
  const data = await fetchData("board", query);
  state.clockOffsetMs = Date.parse(data.generated_at) - Date.now();
  const body = document.querySelector("#board-table tbody");
  body.replaceChildren(...data.rows.map(boardRow));
  if (data.rows.length === 0) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 11;
    cell.textContent = "No open conversations in this range.";
  }
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  document.getElementById("board-count").textContent = `${data.total} open`;
  document.getElementById("board-page").textContent = `page ${data.page} of ${pages}`;
  document.getElementById("board-previous").disabled = data.page <= 1;
  document.getElementById("board-next").disabled = data.page >= pages;
  document.getElementById("range-note").textContent =
    `Conversations with a turn from ${shortTime(data.filters.from)} to ${shortTime(data.filters.to)} UTC.`;
  tickCountdowns();
}

// ------------------------------------------------------------------------------ history

const BUCKET_MILLISECONDS = { hour: 3_600_000, day: 86_400_000 };
const BUCKET_TICK_FORMATS = { hour: "%b %d %H:%M", day: "%b %d" };

// Bucket labels are UTC "YYYY-MM-DD HH:MM:SS" text, which Plotly draws without a time zone.
function shiftBucket(label, milliseconds) {
  const moment = new Date(label.replace(" ", "T") + "Z").getTime() + milliseconds;
  return new Date(moment).toISOString().slice(0, 19).replace("T", " ");
}

// A date axis spanning half a bucket beyond the first and last bucket. Without an explicit
// range Plotly zooms a single bucket down to sub-millisecond ticks.
function bucketAxis(buckets, unit) {
  const axis = { type: "date", tickformat: BUCKET_TICK_FORMATS[unit] || "%b %d %H:%M" };
  if (buckets.length === 0) {
    return axis;
  }
  const half = (BUCKET_MILLISECONDS[unit] || BUCKET_MILLISECONDS.hour) / 2;
  axis.range = [shiftBucket(buckets[0], -half), shiftBucket(buckets[buckets.length - 1], half)];
  return axis;
}

async function loadHistory() {
  const query = filterQuery();
  const names = ["volume", "reasons", "waits", "latency", "agents", "handbacks"];
  const [volume, reasons, waits, latency, agents, handbacks] =
    await Promise.all(names.map((name) => fetchData(name, query)));
  document.getElementById("range-note").textContent =
    `Conversations started from ${shortTime(volume.filters.from)} to ${shortTime(volume.filters.to)} UTC, by ${volume.filters.bucket}.`;

  const buckets = column(volume, "bucket");
  // Bar widths on a date axis are in milliseconds. Plotly derives them from the gaps between
  // bars, so a single bar would otherwise be drawn too thin to see.
  const barWidth = 0.8 * (BUCKET_MILLISECONDS[volume.filters.bucket] || BUCKET_MILLISECONDS.hour);
  plot("chart-volume", [
    { type: "bar", name: "conversations", x: buckets, y: column(volume, "conversations"), width: barWidth, marker: { color: "#b8c7dc" } },
    { type: "bar", name: "escalations", x: buckets, y: column(volume, "escalations"), width: barWidth, marker: { color: "#2458a6" } },
    { type: "scatter", mode: "lines+markers", name: "escalation rate", x: buckets, y: column(volume, "escalation_rate"), yaxis: "y2", line: { color: "#b3261e" } },
  ], { barmode: "overlay", xaxis: bucketAxis(buckets, volume.filters.bucket), yaxis: { title: "conversations" },
    yaxis2: { title: "rate", overlaying: "y", side: "right", tickformat: ".0%", rangemode: "tozero" } });

  plot("chart-reasons", [{ type: "bar", x: column(reasons, "reason"), y: column(reasons, "escalations"), marker: { color: "#2458a6" } }],
    { yaxis: { title: "escalations" } });

  plot("chart-waits", [
    { type: "bar", name: "average wait (s)", x: column(waits, "tier"), y: column(waits, "average_wait_seconds"), marker: { color: "#2458a6" } },
    { type: "bar", name: "max wait (s)", x: column(waits, "tier"), y: column(waits, "max_wait_seconds"), marker: { color: "#b8c7dc" } },
    { type: "scatter", mode: "markers", name: "SLA (s)", x: column(waits, "tier"), y: column(waits, "sla_seconds"), marker: { color: "#b3261e", symbol: "line-ew-open", size: 30 } },
  ], { barmode: "group", yaxis: { title: "seconds" } });

  // Markers as well as lines, because a line through a single bucket draws nothing.
  const latencyBuckets = column(latency, "bucket");
  plot("chart-latency", [
    { type: "scatter", mode: "lines+markers", name: "average (ms)", x: latencyBuckets, y: column(latency, "average_latency_ms") },
    { type: "scatter", mode: "lines+markers", name: "max (ms)", x: latencyBuckets, y: column(latency, "max_latency_ms") },
  ], { xaxis: bucketAxis(latencyBuckets, latency.filters.bucket), yaxis: { title: "ms", rangemode: "tozero" } });

  renderTable(document.getElementById("table-agents"), agents.columns, agents.rows, {
    resolution_rate: percent, average_csat: (value) => number(value, 2),
    average_handle_seconds: (value) => number(value, 0),
  });
  renderTable(document.getElementById("table-handbacks"), handbacks.columns, handbacks.rows);
}

// ------------------------------------------------------------------------------ quality

async function loadQuality() {
  const query = filterQuery();
  const [quality, calibration, bundles, missed] = await Promise.all(
    ["quality", "calibration", "bundles", "missed"].map((name) => fetchData(name, query)));
  document.getElementById("range-note").textContent =
    `Conversations started from ${shortTime(quality.filters.from)} to ${shortTime(quality.filters.to)} UTC with a recorded outcome.`;

  const metrics = Object.fromEntries(quality.rows);
  const tiles = document.getElementById("quality-summary");
  tiles.replaceChildren();
  for (const [name, shown] of [["precision", percent], ["recall", percent], ["f1", percent],
    ["missed_escalations", number], ["premature_handoffs", number], ["late_handoffs", number],
    ["with_outcome", number]]) {
    const tile = element("div", null, "tile");
    tile.dataset.metric = name;
    tile.appendChild(element("div", shown(metrics[name]), "value"));
    tile.appendChild(element("div", name.replaceAll("_", " "), "label"));
    tiles.appendChild(tile);
  }

  const populated = calibration.rows.filter((row) => row[3] > 0);
  const index = (name) => calibration.columns.indexOf(name);
  plot("chart-calibration", [
    { type: "scatter", mode: "lines", name: "perfect", x: [0, 1], y: [0, 1], line: { dash: "dot", color: "#98a2ad" } },
    { type: "scatter", mode: "lines+markers", name: "observed", x: populated.map((row) => row[index("mean_probability")]),
      y: populated.map((row) => row[index("observed_rate")]), text: populated.map((row) => `${row[index("conversations")]} conversations`),
      line: { color: "#2458a6" } },
  ], { xaxis: { title: "highest predicted probability", range: [0, 1] }, yaxis: { title: "share escalated", range: [0, 1] } });

  plot("chart-timing", [{ type: "bar",
    x: ["timely", "late", "premature", "missed"],
    y: [metrics.timely_handoffs, metrics.late_handoffs, metrics.premature_handoffs, metrics.missed_escalations],
    marker: { color: ["#1e7a46", "#a15c00", "#2458a6", "#b3261e"] } }], { yaxis: { title: "conversations" } });

  renderTable(document.getElementById("table-bundles"), bundles.columns, bundles.rows,
    { precision: percent, recall: percent, first_started: shortTime, last_started: shortTime });
  renderTable(document.getElementById("table-missed"), missed.columns, missed.rows,
    { max_probability: percent, started_at: shortTime });
}

// ------------------------------------------------------------------------------ views

const LOADERS = { board: loadBoard, history: loadHistory, quality: loadQuality };

async function loadView() {
  updateCsvLinks();
  showStatus("");
  try {
    await LOADERS[state.view]();
    document.body.dataset.loaded = state.view;
  } catch (error) {
    showStatus(`Could not load the data: ${error.message}`);
  }
}

function showView() {
  const requested = window.location.hash.replace("#", "");
  state.view = LOADERS[requested] ? requested : "board";
  for (const section of document.querySelectorAll("[data-view-section]")) {
    section.hidden = section.dataset.viewSection !== state.view;
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    link.classList.toggle("active", link.dataset.view === state.view);
  }
  window.clearInterval(state.boardTimer);
  if (state.view === "board") {
    state.boardTimer = window.setInterval(loadView, BOARD_REFRESH_MS);
  }
  delete document.body.dataset.loaded;
  loadView();
}

async function start() {
  document.getElementById("filters").addEventListener("submit", applyFilters);
  document.getElementById("reset-filters").addEventListener("click", resetFilters);
  document.getElementById("board-sort").addEventListener("change", (event) => {
    state.sort = event.target.value;
    state.page = 1;
    loadView();
  });
  document.getElementById("board-previous").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    loadView();
  });
  document.getElementById("board-next").addEventListener("click", () => {
    state.page += 1;
    loadView();
  });
  window.addEventListener("hashchange", showView);
  window.setInterval(tickCountdowns, 1000);
  try {
    fillFilterForm(await fetchData("options", new URLSearchParams()));
  } catch (error) {
    showStatus(`Could not load the filter lists: ${error.message}`);
  }
  showView();
}

document.addEventListener("DOMContentLoaded", start);
