// `GET /api/v1/events` read with a streaming fetch: EventSource cannot send the bearer token,
// and the token never goes into a URL. Frames are parsed here (the text/event-stream format);
// a dropped stream is reopened with a growing delay, and `onOpen` runs after every (re)open so
// the caller can re-read what it may have missed.

/** Parses complete frames off the front of `buffer`; answers [events, rest]. */
export function parseFrames(buffer) {
  const events = [];
  const normalized = buffer.replace(/\r\n?/g, "\n");
  const frames = normalized.split("\n\n");
  const rest = frames.pop();
  for (const frame of frames) {
    let name = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length > 0) events.push({ name, data: data.join("\n") });
  }
  return [events, rest];
}

/**
 * Keeps the stream open until `stop()` is called. `onEvent(name, json)` per event, `onOpen()`
 * after each successful (re)connect, `onState("live" | "retrying", delayMs)`, `onDenied()` on
 * 401 (the token is no longer valid; no retry).
 */
export function connect({ token, onEvent, onOpen, onState, onDenied }) {
  let stopped = false;
  let controller = null;
  let failures = 0;

  async function once() {
    controller = new AbortController();
    const response = await fetch("/api/v1/events", {
      headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 401) {
      stopped = true;
      onDenied();
      return;
    }
    if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
    failures = 0;
    onState("live", 0);
    await onOpen();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const [events, rest] = parseFrames(buffer);
      buffer = rest;
      for (const event of events) {
        let json = null;
        try {
          json = JSON.parse(event.data);
        } catch {
          continue;
        }
        onEvent(event.name, json);
      }
    }
  }

  async function loop() {
    while (!stopped) {
      try {
        await once();
      } catch (error) {
        if (stopped) break;
      }
      if (stopped) break;
      failures += 1;
      // 0.5 s, 1 s, 2 s ... at most 15 s, with some jitter so many consoles do not return at once.
      const delay = Math.min(15000, 500 * 2 ** Math.min(failures - 1, 5)) * (0.8 + Math.random() * 0.4);
      onState("retrying", delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  loop();
  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}
