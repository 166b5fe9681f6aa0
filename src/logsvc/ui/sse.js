// Server-Sent Events read with fetch(), because EventSource cannot send an Authorization header.
// SseParser follows the WHATWG HTML "event stream interpretation": lines end in CRLF, LF or CR, even split
// across chunks; `data` lines join with LF; the last event ID is set when an event ends (a blank line), even
// one without data, and kept for the next events; comments are ignored, and so is `retry` (reconnection
// has its own backoff).

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.idBuffer = "";
    this.lastEventId = ""; // as of the last event that ended: where a reconnection resumes
    this.afterCR = false;
  }

  /** Start from the ID a previous connection ended with. */
  resumeFrom(id) {
    this.idBuffer = id;
    this.lastEventId = id;
  }

  /** Feed decoded text; complete events are given to onEvent({type, data, id}). */
  push(text) {
    if (this.afterCR && text) {
      // The last chunk ended in CR: a LF that starts this one belongs to it (CRLF).
      if (text.startsWith("\n")) text = text.slice(1);
      this.afterCR = false;
    }
    this.buffer += text;
    let start = 0;
    // Each search resumes where it stopped: a chunk of many lines is read once, not once per line.
    let cr = this.buffer.indexOf("\r");
    let lf = this.buffer.indexOf("\n");
    for (;;) {
      if (cr !== -1 && cr < start) cr = this.buffer.indexOf("\r", start);
      if (lf !== -1 && lf < start) lf = this.buffer.indexOf("\n", start);
      if (cr === -1 && lf === -1) break;
      const end = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf;
      let next = end + 1;
      if (end === cr) {
        if (next === this.buffer.length) this.afterCR = true;
        else if (this.buffer[next] === "\n") next += 1;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.idBuffer = value;
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    const data = this.data;
    const type = this.type;
    this.data = [];
    this.type = "";
    if (data.length === 0) return;
    this.onEvent({ type: type || "message", data: data.join("\n"), id: this.lastEventId });
  }
}

const STALLED_MS = 45_000; // three missed heartbeats (the server sends one every 15 s)
const MAX_BACKOFF_MS = 15_000;

/**
 * A live tail that stays connected: on any break it reconnects, with Last-Event-ID, so no entry is missed
 * or repeated. handlers: entry(entry), dropped(count), state(text), refused(ApiError) for a 401/403.
 */
export class LiveTail {
  constructor(url, headers, handlers, failure) {
    this.url = url;
    this.headers = headers;
    this.handlers = handlers;
    this.failure = failure;
    this.lastEventId = "";
    this.controller = null;
    this.stopped = true;
    this.backoff = 1000;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
  }

  async connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: "text/event-stream", ...this.headers };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    let wait = this.backoff;
    try {
      const response = await fetch(this.url, {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
      if (!response.ok) {
        const error = await this.failure(response);
        if (error.status === 401 || error.status === 403) {
          this.stopped = true;
          this.handlers.refused(error);
          return;
        }
        this.handlers.state(`reconnecting: ${error.message}`);
        if (error.retryAfter) wait = error.retryAfter * 1000;
      } else {
        this.handlers.state("connected");
        await this.read(response, controller);
        if (!this.stopped) this.handlers.state("reconnecting");
      }
    } catch (error) {
      if (this.stopped) return;
      this.handlers.state(`reconnecting: ${error.message || error}`);
    }
    if (this.stopped) return;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  async read(response, controller) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => this.event(event));
    parser.resumeFrom(this.lastEventId);
    let stall = setTimeout(() => controller.abort(), STALLED_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(stall);
        stall = setTimeout(() => controller.abort(), STALLED_MS);
        this.backoff = 1000;
        parser.push(decoder.decode(value, { stream: true }));
        this.lastEventId = parser.lastEventId;
      }
    } finally {
      clearTimeout(stall);
    }
  }

  event(event) {
    if (event.type === "entry") {
      let entry;
      try {
        entry = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handlers.entry(entry);
    } else if (event.type === "dropped") {
      try {
        this.handlers.dropped(Number(JSON.parse(event.data).dropped) || 0);
      } catch {
        // A malformed count is no count.
      }
    }
  }
}
