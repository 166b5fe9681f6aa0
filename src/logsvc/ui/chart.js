// The volume chart: one bar per bucket of GET /logs/stats, stacked by level, drawn as SVG. Dragging
// across it (or clicking one bar) narrows the view to that span.

import { LEVELS, levelClass, parseTime, svg } from "./dom.js";
import { intervalMs } from "./query.js";

const HEIGHT = 140;
const LEFT = 48;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 22;
// The severe levels at the bottom of each bar, where they are seen first.
const STACK = [...LEVELS].reverse();

function pad(number) {
  return String(number).padStart(2, "0");
}

function tickLabel(date, longSpan) {
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return longSpan ? `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}` : time;
}

function total(counts) {
  return Object.values(counts || {}).reduce((sum, count) => sum + (Number(count) || 0), 0);
}

export class VolumeChart {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.stats = null;
    this.drag = null;
    new ResizeObserver(() => this.draw()).observe(container);
  }

  show(stats) {
    this.stats = stats;
    this.draw();
  }

  clear() {
    this.stats = null;
    this.container.replaceChildren();
  }

  draw() {
    const stats = this.stats;
    if (!stats) return;
    const buckets = stats.buckets || [];
    const width = Math.max(200, Math.floor(this.container.clientWidth || 600));
    const plotWidth = width - LEFT - RIGHT;
    const plotHeight = HEIGHT - TOP - BOTTOM;
    const totals = buckets.map((bucket) => total(bucket.counts));
    const max = Math.max(1, ...totals);
    const sum = totals.reduce((a, b) => a + b, 0);
    const step = buckets.length ? plotWidth / buckets.length : plotWidth;
    const gap = step > 4 ? 1 : 0;
    const chart = svg("svg", {
      className: "volume",
      attrs: {
        width,
        height: HEIGHT,
        viewBox: `0 0 ${width} ${HEIGHT}`,
        role: "img",
        "aria-label": `${sum} entries, ${buckets.length} bars of ${stats.interval}`,
        "data-total": sum,
      },
    });
    chart.append(
      svg("line", { className: "axis", attrs: { x1: LEFT, x2: width - RIGHT, y1: TOP + plotHeight, y2: TOP + plotHeight } }),
      svg("text", { className: "axis-label", text: String(max), attrs: { x: LEFT - 6, y: TOP + 8, "text-anchor": "end" } }),
      svg("text", { className: "axis-label", text: "0", attrs: { x: LEFT - 6, y: TOP + plotHeight, "text-anchor": "end" } }),
    );
    const longSpan = buckets.length * intervalMs(stats.interval) > 86_400_000;
    buckets.forEach((bucket, index) => {
      const x = LEFT + index * step;
      const group = svg("g", {
        className: "bucket",
        attrs: { "data-start": bucket.start, "data-total": totals[index] },
      });
      let y = TOP + plotHeight;
      const counts = bucket.counts || {};
      const names = [...STACK, ...Object.keys(counts).filter((name) => !LEVELS.includes(name)).sort()];
      for (const name of names) {
        const count = Number(counts[name]) || 0;
        if (!count) continue;
        const height = (count / max) * plotHeight;
        y -= height;
        group.append(
          svg("rect", {
            className: `bar ${levelClass(name)}`,
            attrs: { x: x + gap / 2, y, width: Math.max(0.5, step - gap), height, "data-level": name, "data-count": count },
          }),
        );
      }
      const detail = names
        .filter((name) => counts[name])
        .map((name) => `${name} ${counts[name]}`)
        .join(", ");
      group.append(
        svg("rect", { className: "hit", attrs: { x, y: TOP, width: step, height: plotHeight } }, [
          svg("title", { text: `${parseTime(bucket.start).toLocaleString()}: ${detail || "no entries"}` }),
        ]),
      );
      chart.append(group);
    });
    // Four times along the axis; the first and last aligned to the ends so that none is cut off.
    const last = buckets.length - 1;
    const ticks = [...new Set([0, Math.floor(buckets.length / 3), Math.floor((2 * buckets.length) / 3), last])];
    for (const index of buckets.length ? ticks : []) {
      const anchor = index === 0 ? "start" : index === last ? "end" : "middle";
      const x = { start: LEFT, end: LEFT + plotWidth, middle: LEFT + index * step + step / 2 }[anchor];
      chart.append(
        svg("text", {
          className: "axis-label",
          text: tickLabel(parseTime(buckets[index].start), longSpan),
          attrs: { x, y: HEIGHT - 6, "text-anchor": anchor },
        }),
      );
    }
    this.selection = svg("rect", { className: "selection", attrs: { x: 0, y: TOP, width: 0, height: plotHeight, visibility: "hidden" } });
    chart.append(this.selection);
    chart.addEventListener("pointerdown", (event) => this.pointerDown(event, chart, step));
    chart.addEventListener("pointermove", (event) => this.pointerMove(event, chart, step));
    chart.addEventListener("pointerup", (event) => this.pointerUp(event, chart, step));
    chart.addEventListener("pointercancel", () => this.cancel());
    this.container.replaceChildren(chart);
  }

  index(event, chart, step) {
    const x = event.clientX - chart.getBoundingClientRect().left - LEFT;
    const count = this.stats.buckets.length;
    return Math.min(count - 1, Math.max(0, Math.floor(x / step)));
  }

  pointerDown(event, chart, step) {
    if (!this.stats.buckets.length || event.button !== 0) return;
    chart.setPointerCapture(event.pointerId);
    const index = this.index(event, chart, step);
    this.drag = { from: index, to: index };
    this.mark(step);
  }

  pointerMove(event, chart, step) {
    if (!this.drag) return;
    this.drag.to = this.index(event, chart, step);
    this.mark(step);
  }

  pointerUp(event, chart, step) {
    if (!this.drag) return;
    this.drag.to = this.index(event, chart, step);
    const low = Math.min(this.drag.from, this.drag.to);
    const high = Math.max(this.drag.from, this.drag.to);
    this.cancel();
    const buckets = this.stats.buckets;
    const since = parseTime(buckets[low].start);
    const until = new Date(parseTime(buckets[high].start).getTime() + intervalMs(this.stats.interval));
    this.onSelect(since.toISOString(), until.toISOString());
  }

  mark(step) {
    const low = Math.min(this.drag.from, this.drag.to);
    const high = Math.max(this.drag.from, this.drag.to);
    this.selection.setAttribute("x", LEFT + low * step);
    this.selection.setAttribute("width", (high - low + 1) * step);
    this.selection.setAttribute("visibility", "visible");
  }

  cancel() {
    this.drag = null;
    if (this.selection) this.selection.setAttribute("visibility", "hidden");
  }
}
