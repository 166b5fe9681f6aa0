// The viewer: sign-in, the query bar (mirrored in the URL), the volume chart, the list with paging on
// scroll, one entry with its context, and Live. Every piece of log text goes into the page as text.

import { apiUrl, authHeaders, failure, forgetKey, getJson, storeKey, storedKey } from "./api.js";
import { VolumeChart } from "./chart.js";
import { byId, el, formatTime, levelClass } from "./dom.js";
import { filters, fromLocalInput, intervalFor, readView, spanMs, toLocalInput, viewSearch } from "./query.js";
import { LiveTail } from "./sse.js";

const PAGE_SIZE = 100;
const CONTEXT = 10;
const LIVE_ROWS = 2000; // rows kept on screen in Live: older ones leave at the bottom
const PENDING_MAX = 5000; // entries held while the reader is scrolled away; past that the oldest go
const TOP_SLACK = 48; // pixels from the top that still count as "at the top"
const RATE_WINDOW_MS = 10_000;

const page = {
  signedOut: byId("signed-out"),
  signIn: byId("sign-in"),
  key: byId("api-key"),
  signInError: byId("sign-in-error"),
  signOut: byId("sign-out"),
  viewer: byId("viewer"),
  query: byId("query"),
  q: byId("q"),
  service: byId("service"),
  minLevel: byId("min-level"),
  range: byId("range"),
  customRange: byId("custom-range"),
  since: byId("since"),
  until: byId("until"),
  live: byId("live"),
  chartNote: byId("chart-note"),
  liveStatus: byId("live-status"),
  liveState: byId("live-state"),
  rate: byId("rate"),
  dropped: byId("dropped"),
  resume: byId("resume"),
  pending: byId("pending"),
  status: byId("status"),
  results: byId("results"),
  more: byId("more"),
  dialog: byId("entry"),
  entryTitle: byId("entry-title"),
  permalink: byId("permalink"),
  close: byId("close"),
  entryMessage: byId("entry-message"),
  entryJson: byId("entry-json"),
  contextStatus: byId("context-status"),
  context: byId("context"),
};

let view = readView();
let generation = 0; // each query gets a number; answers to an older one are dropped
let controller = null;
let contextGeneration = 0;
let nextCursor = null;
let loading = false;
const shown = new Map(); // log_id -> entry, for the rows of the list
let live = null;
const chart = new VolumeChart(byId("chart"), (since, until) =>
  setView({ ...view, range: "custom", since, until, entry: "" }),
);

// --- signing in and out -------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const key = page.key.value.trim();
  if (!key) return;
  page.signInError.textContent = "";
  try {
    await getJson("logs", { limit: 1 }, { key });
  } catch (error) {
    const why = { 401: "This key was refused", 403: "This key may not read logs" }[error.status];
    page.signInError.textContent = `${why || "Could not sign in"}: ${error.message}`;
    return;
  }
  storeKey(key);
  page.key.value = "";
  showViewer();
}

function signOut(message = "") {
  stopLive();
  forgetKey();
  generation += 1;
  if (controller) controller.abort();
  shown.clear();
  page.results.replaceChildren();
  chart.clear();
  if (page.dialog.open) page.dialog.close();
  page.viewer.hidden = true;
  page.signOut.hidden = true;
  page.signedOut.hidden = false;
  page.signInError.textContent = message;
  page.key.focus();
}

/** A refused credential ends the session; anything else is said where it happened. */
function refused(error) {
  if (error.status === 401) {
    signOut(`Signed out: ${error.message}`);
    return true;
  }
  return false;
}

function showViewer() {
  page.signedOut.hidden = true;
  page.viewer.hidden = false;
  page.signOut.hidden = false;
  showView();
  loadServices();
  runQuery();
  if (view.entry) openEntryById(view.entry);
  if (view.live) startLive();
}

// --- the view and the URL -----------------------------------------------------------------------------

function ensureServiceOption(name) {
  if (name && ![...page.service.options].some((option) => option.value === name)) {
    page.service.append(el("option", { text: name, attrs: { value: name } }));
  }
}

function showView() {
  page.q.value = view.q;
  ensureServiceOption(view.service_name);
  page.service.value = view.service_name;
  page.minLevel.value = view.min_level;
  page.range.value = view.range;
  page.customRange.hidden = view.range !== "custom";
  page.since.value = toLocalInput(view.since);
  page.until.value = toLocalInput(view.until);
  page.live.setAttribute("aria-pressed", view.live ? "true" : "false");
}

function formView() {
  const range = page.range.value;
  const custom = range === "custom";
  return {
    ...view,
    q: page.q.value.trim(),
    service_name: page.service.value,
    min_level: page.minLevel.value,
    range,
    since: custom ? fromLocalInput(page.since.value) : "",
    until: custom ? fromLocalInput(page.until.value) : "",
    entry: "",
  };
}

function setView(next) {
  view = next;
  history.pushState(null, "", viewSearch(view));
  showView();
  runQuery();
  if (live) {
    stopLive();
    startLive();
  }
}

function rangeChanged() {
  if (page.range.value !== "custom") {
    setView(formView());
    return;
  }
  // A custom range starts as the span shown so far, to be edited.
  page.customRange.hidden = false;
  if (!page.since.value) page.since.value = toLocalInput(new Date(Date.now() - spanMs(view)).toISOString());
  if (!page.until.value) page.until.value = toLocalInput(new Date().toISOString());
  page.since.focus();
}

// --- the list -----------------------------------------------------------------------------------------

function setStatus(text, isError = false) {
  page.status.textContent = text;
  page.status.classList.toggle("error", isError);
}

function row(entry, current = false) {
  return el("li", { className: current ? "current" : undefined }, [
    el(
      "button",
      {
        className: `row ${levelClass(entry.level)}`,
        attrs: { type: "button", "data-id": entry.log_id, "aria-current": current ? "true" : undefined },
        on: { click: () => openEntry(entry) },
      },
      [
        el("time", { className: "ts", text: formatTime(entry.timestamp), attrs: { datetime: entry.timestamp } }),
        el("span", { className: `lvl ${levelClass(entry.level)}`, text: entry.level }),
        el("span", { className: "svc", text: entry.service_name }),
        el("span", { className: "msg", text: entry.message }),
      ],
    ),
  ]);
}

function showCount() {
  if (loading) return;
  const count = shown.size;
  setStatus(count ? `${count} entr${count === 1 ? "y" : "ies"}${nextCursor ? ", more on scroll" : ""}` : "No entries match.");
  page.more.textContent = nextCursor ? "Scroll for more" : count ? "End of the results" : "";
}

async function runQuery() {
  generation += 1;
  const mine = generation;
  if (controller) controller.abort();
  controller = new AbortController();
  shown.clear();
  page.results.replaceChildren();
  nextCursor = null;
  loadStats(mine, controller.signal);
  await loadPage(mine, null);
}

async function loadPage(mine, cursor) {
  loading = true;
  page.more.textContent = "Loading…";
  if (!cursor) setStatus("Loading…");
  try {
    const answer = await getJson(
      "logs",
      { ...filters(view), limit: PAGE_SIZE, cursor },
      { signal: controller.signal },
    );
    if (mine !== generation) return;
    const rows = [];
    for (const entry of answer.logs) {
      if (shown.has(entry.log_id)) continue;
      shown.set(entry.log_id, entry);
      rows.push(row(entry));
    }
    page.results.append(...rows);
    nextCursor = answer.next_cursor;
  } catch (error) {
    if (error.name === "AbortError" || mine !== generation || refused(error)) return;
    nextCursor = null;
    setStatus(`Could not read the logs: ${error.message}`, true);
    page.more.textContent = "";
    return;
  } finally {
    if (mine === generation) loading = false;
  }
  showCount();
  loadMoreIfNear();
}

function loadMoreIfNear() {
  if (!nextCursor || loading || page.viewer.hidden) return;
  if (page.more.getBoundingClientRect().top < window.innerHeight + 400) loadPage(generation, nextCursor);
}

// --- the chart and the services -----------------------------------------------------------------------

async function loadStats(mine, signal) {
  const interval = intervalFor(spanMs(view));
  try {
    const stats = await getJson("logs/stats", { ...filters(view), interval, by: "level" }, { signal });
    if (mine !== generation) return;
    chart.show(stats);
    const widened = stats.requested_interval ? ` (widened from ${stats.requested_interval})` : "";
    page.chartNote.textContent = `Entries per ${stats.interval}${widened}. Drag across the chart to narrow the range.`;
  } catch (error) {
    if (error.name === "AbortError" || mine !== generation || refused(error)) return;
    chart.clear();
    page.chartNote.textContent = `No volume chart: ${error.message}`;
  }
}

async function loadServices() {
  try {
    const answer = await getJson("services");
    const options = answer.services.map((service) =>
      el("option", { text: `${service.service_name} (${service.count})`, attrs: { value: service.service_name } }),
    );
    page.service.replaceChildren(el("option", { text: "All services", attrs: { value: "" } }), ...options);
    ensureServiceOption(view.service_name);
    page.service.value = view.service_name;
  } catch (error) {
    if (!refused(error)) page.service.title = `The list of services is not available: ${error.message}`;
  }
}

// --- one entry ----------------------------------------------------------------------------------------

function openEntry(entry) {
  page.entryTitle.replaceChildren(
    el("span", { className: `lvl ${levelClass(entry.level)}`, text: entry.level }),
    ` ${formatTime(entry.timestamp)} · ${entry.service_name}`,
  );
  page.entryMessage.textContent = entry.message;
  page.entryJson.textContent = JSON.stringify(entry, null, 2);
  const permalink = new URL(location.pathname, location.href);
  permalink.searchParams.set("entry", entry.log_id);
  page.permalink.href = permalink.href;
  view = { ...view, entry: entry.log_id };
  history.replaceState(null, "", viewSearch(view));
  if (!page.dialog.open) page.dialog.showModal();
  loadContext(entry);
}

async function openEntryById(logId) {
  try {
    openEntry(await getJson(`logs/${encodeURIComponent(logId)}`));
  } catch (error) {
    if (!refused(error)) setStatus(`Entry ${logId}: ${error.message}`, true);
  }
}

async function loadContext(entry) {
  contextGeneration += 1;
  const mine = contextGeneration;
  page.context.replaceChildren();
  page.contextStatus.textContent = "Loading…";
  try {
    const around = await getJson(`logs/${encodeURIComponent(entry.log_id)}/context`, {
      before: CONTEXT,
      after: CONTEXT,
    });
    if (mine !== contextGeneration) return;
    page.context.replaceChildren(
      ...around.before.map((other) => row(other)),
      row(around.entry, true),
      ...around.after.map((other) => row(other)),
    );
    page.contextStatus.textContent = `${around.before.length} before and ${around.after.length} after, oldest first.`;
  } catch (error) {
    if (mine !== contextGeneration || refused(error)) return;
    page.contextStatus.textContent = `No context: ${error.message}`;
  }
}

function entryClosed() {
  contextGeneration += 1;
  view = { ...view, entry: "" };
  history.replaceState(null, "", viewSearch(view));
}

// --- Live ---------------------------------------------------------------------------------------------

function atTop() {
  return window.scrollY <= TOP_SLACK;
}

function startLive() {
  const url = apiUrl("logs/tail", filters(view, { withTime: false }));
  live = { pending: [], arrivals: [], dropped: 0, started: performance.now(), timer: 0, tail: null };
  live.tail = new LiveTail(
    url,
    authHeaders(),
    {
      entry: liveEntry,
      dropped: (count) => {
        live.dropped += count;
        showLive();
      },
      state: (text) => {
        page.liveState.textContent = text;
      },
      refused: (error) => {
        if (!refused(error)) {
          stopLive();
          setStatus(`Live: ${error.message}`, true);
        }
      },
    },
    failure,
  );
  page.live.setAttribute("aria-pressed", "true");
  page.liveState.textContent = "connecting";
  page.liveStatus.hidden = false;
  live.timer = setInterval(showLive, 1000);
  showLive();
  live.tail.start();
}

function stopLive() {
  if (!live) return;
  live.tail.stop();
  clearInterval(live.timer);
  live = null;
  page.live.setAttribute("aria-pressed", "false");
  page.liveStatus.hidden = true;
}

function liveEntry(entry) {
  const now = performance.now();
  live.arrivals.push(now);
  while (live.arrivals.length && live.arrivals[0] < now - RATE_WINDOW_MS) live.arrivals.shift();
  if (shown.has(entry.log_id)) return;
  if (atTop()) {
    prepend([entry]);
  } else {
    live.pending.push(entry);
    if (live.pending.length > PENDING_MAX) live.pending.shift();
  }
  showLive();
}

/** New entries (oldest first, as they came) on top of the list, newest first. */
function prepend(entries) {
  const rows = [];
  for (const entry of entries) {
    if (shown.has(entry.log_id)) continue;
    shown.set(entry.log_id, entry);
    rows.push(row(entry));
  }
  page.results.prepend(...rows.reverse());
  let trimmed = false;
  while (page.results.children.length > LIVE_ROWS) {
    const last = page.results.lastElementChild;
    shown.delete(last.querySelector(".row").dataset.id);
    last.remove();
    trimmed = true;
  }
  if (trimmed) nextCursor = null; // paging on from the bottom would skip what was trimmed
  showCount();
}

function flushPending() {
  if (!live || !live.pending.length || !atTop()) return;
  const pending = live.pending;
  live.pending = [];
  prepend(pending);
  showLive();
}

function showLive() {
  if (!live) return;
  const now = performance.now();
  const recent = live.arrivals.filter((at) => at >= now - RATE_WINDOW_MS).length;
  const seconds = Math.max(1, Math.min(RATE_WINDOW_MS, now - live.started) / 1000);
  page.rate.textContent = (recent / seconds).toFixed(1);
  page.dropped.textContent = String(live.dropped);
  page.pending.textContent = String(live.pending.length);
  page.resume.hidden = live.pending.length === 0;
}

function toggleLive() {
  if (live) {
    stopLive();
    view = { ...view, live: "" };
    history.replaceState(null, "", viewSearch(view));
    runQuery();
  } else {
    view = { ...view, live: "1" };
    history.replaceState(null, "", viewSearch(view));
    startLive();
  }
}

// --- the keyboard -------------------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
}

function keydown(event) {
  if (page.viewer.hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "/" && !typing(event.target) && !page.dialog.open) {
    event.preventDefault();
    page.q.focus();
    page.q.select();
    return;
  }
  const current = event.target instanceof HTMLElement ? event.target.closest(".row") : null;
  if (current && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    const item = current.parentElement;
    const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
    if (next) {
      event.preventDefault();
      next.querySelector(".row").focus();
    }
  }
}

// --- wiring -------------------------------------------------------------------------------------------

page.signIn.addEventListener("submit", signIn);
page.signOut.addEventListener("click", () => signOut());
page.query.addEventListener("submit", (event) => {
  event.preventDefault();
  setView(formView());
});
page.service.addEventListener("change", () => setView(formView()));
page.minLevel.addEventListener("change", () => setView(formView()));
page.range.addEventListener("change", rangeChanged);
page.live.addEventListener("click", toggleLive);
page.resume.addEventListener("click", () => {
  window.scrollTo({ top: 0, behavior: "instant" });
  flushPending();
});
page.close.addEventListener("click", () => page.dialog.close());
page.dialog.addEventListener("close", entryClosed);
document.addEventListener("keydown", keydown);
window.addEventListener(
  "scroll",
  () => {
    flushPending();
    loadMoreIfNear();
  },
  { passive: true },
);
window.addEventListener("popstate", () => {
  const wasLive = Boolean(view.live);
  view = readView();
  if (page.viewer.hidden) return;
  showView();
  runQuery();
  if (wasLive !== Boolean(view.live)) (view.live ? startLive : stopLive)();
  if (view.entry && !page.dialog.open) openEntryById(view.entry);
  if (!view.entry && page.dialog.open) page.dialog.close();
});

if (storedKey()) showViewer();
else page.key.focus();
