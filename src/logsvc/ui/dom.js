// Elements are made here and only here, and text always goes in as text (textContent): log entries are
// untrusted input. The page's Content-Security-Policy refuses every HTML sink (Trusted Types without a
// policy), so an innerHTML anywhere would throw rather than render.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, { text, className, attrs, on } = {}, children = []) {
  if (className) node.setAttribute("class", className);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const [type, handler] of Object.entries(on || {})) node.addEventListener(type, handler);
  if (text !== undefined) node.textContent = String(text);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** An HTML element: el("span", {className: "x", text: "hello"}, [children...]). */
export function el(tag, props, children) {
  return fill(document.createElement(tag), props, children);
}

/** An SVG element, made the same way. */
export function svg(tag, props, children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/** A level name as a class name; anything unexpected gets the neutral class. */
export function levelClass(level) {
  return LEVELS.includes(level) ? `level-${level}` : "level-unknown";
}

function pad(number, width = 2) {
  return String(number).padStart(width, "0");
}

/** The entry's time (RFC 3339, microseconds) as a Date; JavaScript keeps milliseconds. */
export function parseTime(text) {
  return new Date(String(text).replace(/(\.\d{3})\d+/, "$1"));
}

/** Local time, to the millisecond: 2026-12-01 10:00:00.123. */
export function formatTime(text) {
  const date = parseTime(text);
  if (Number.isNaN(date.getTime())) return String(text);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3)
  );
}
