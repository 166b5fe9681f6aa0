// The view in the page's URL (/ui/?q=...&service_name=...&min_level=...&range=1h), so that it can be shared
// by its address. The key never goes there. Preset ranges are sent as `hours` (a window ending at the
// server's now, whatever the browser's clock says); a custom range as since/until in RFC 3339.

export const RANGES = { "15m": 0.25, "1h": 1, "24h": 24, "7d": 168 };
export const DEFAULT_RANGE = "24h";
const FIELDS = ["q", "service_name", "min_level", "range", "since", "until", "entry", "live"];

/** The view the URL names; anything it does not name has its default. */
export function readView(search = location.search) {
  const params = new URLSearchParams(search);
  const view = Object.fromEntries(FIELDS.map((name) => [name, params.get(name) || ""]));
  if (view.range !== "custom" && !(view.range in RANGES)) view.range = DEFAULT_RANGE;
  if (view.range === "custom" && !view.since && !view.until) view.range = DEFAULT_RANGE;
  if (view.range !== "custom") {
    view.since = "";
    view.until = "";
  }
  view.live = view.live === "1" ? "1" : "";
  return view;
}

/** The URL of a view: only what differs from the defaults. */
export function viewSearch(view) {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = view[name];
    if (!value || (name === "range" && value === DEFAULT_RANGE)) continue;
    if ((name === "since" || name === "until") && view.range !== "custom") continue;
    params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : location.pathname;
}

/** The filters of GET /logs (and of the stats, tail and context routes) for a view. */
export function filters(view, { withTime = true } = {}) {
  const params = { q: view.q, service_name: view.service_name, min_level: view.min_level };
  if (withTime) {
    if (view.range === "custom") {
      params.since = view.since;
      params.until = view.until;
    } else {
      params.hours = RANGES[view.range];
    }
  }
  return params;
}

/** The time span of a view in milliseconds (a custom range open at one end runs to now, or a day back). */
export function spanMs(view, now = Date.now()) {
  if (view.range !== "custom") return RANGES[view.range] * 3_600_000;
  const until = view.until ? Date.parse(view.until) : now;
  const since = view.since ? Date.parse(view.since) : until - 86_400_000;
  return Math.max(1000, until - since);
}

const STEPS = [
  ["1s", 1], ["5s", 5], ["10s", 10], ["15s", 15], ["30s", 30], ["1m", 60], ["2m", 120], ["5m", 300],
  ["10m", 600], ["15m", 900], ["30m", 1800], ["1h", 3600], ["2h", 7200], ["3h", 10800], ["6h", 21600],
  ["12h", 43200], ["1d", 86400],
];

/** A round interval that cuts the span into at most about 60 bars. */
export function intervalFor(span) {
  const wanted = span / 1000 / 60;
  const step = STEPS.find(([, seconds]) => seconds >= wanted) || STEPS[STEPS.length - 1];
  return step[0];
}

const UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "60s", "5m", "1h", "1d" in milliseconds (the stats route's interval syntax). */
export function intervalMs(text) {
  const match = /^(\d+)([smhd])$/.exec(String(text));
  return match ? Number(match[1]) * UNITS[match[2]] : 0;
}

function pad(number) {
  return String(number).padStart(2, "0");
}

/** An RFC 3339 time as the value of a datetime-local field (the browser's time zone). */
export function toLocalInput(text) {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return "";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A datetime-local field's value (the browser's time zone) in RFC 3339, UTC. */
export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}
