// Loupe's HTTP API as the playground uses it: models, estimates, and streamed chat completions.

export const API_BASE = `${window.location.origin}/v1`;

/** An error answered by the server in OpenAI's envelope (or a network failure, code NETWORK). */
export class ApiError extends Error {
  constructor(message, { code = null, param = null, status = null } = {}) {
    super(message);
    this.code = code;
    this.param = param;
    this.status = status;
  }
}

function headers(apiKey) {
  const out = { "Content-Type": "application/json" };
  if (apiKey) out.Authorization = `Bearer ${apiKey}`;
  return out;
}

async function request(path, { method = "GET", body, apiKey, signal } = {}) {
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, {
      method,
      headers: headers(apiKey),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`Could not reach the server: ${error.message}`, { code: "NETWORK" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  const text = await response.text();
  try {
    return envelopeError(JSON.parse(text), response.status);
  } catch {
    return new ApiError(`HTTP ${response.status}: ${text.slice(0, 300)}`, { status: response.status });
  }
}

function envelopeError(payload, status = null) {
  const error = payload && payload.error;
  if (!error || typeof error.message !== "string") throw new TypeError("not an error envelope");
  return new ApiError(error.message, { code: error.code ?? null, param: error.param ?? null, status });
}

export async function listModels(apiKey) {
  const response = await request("/models", { apiKey });
  return (await response.json()).data;
}

export async function estimate(body, { apiKey, signal }) {
  const response = await request("/estimate", { method: "POST", body, apiKey, signal });
  return response.json();
}

/**
 * Stream a chat completion: yields each `chat.completion.chunk` object until `data: [DONE]`.
 * Throws ApiError for an error status, or for an error event sent after the stream started.
 */
export async function* streamChat(body, { apiKey, signal }) {
  const response = await request("/chat/completions", { method: "POST", body, apiKey, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = dataOf(event);
      if (data === null) continue;
      if (data === "[DONE]") return;
      const payload = JSON.parse(data);
      if (payload.error) throw envelopeError(payload);
      yield payload;
    }
  }
  throw new ApiError("The stream ended before the answer was complete.", { code: "STREAM_INTERRUPTED" });
}

// The payload of one SSE event: its `data:` lines joined, or null for comments and keep-alives.
function dataOf(event) {
  const lines = event.split("\n").filter((line) => line.startsWith("data:"));
  if (lines.length === 0) return null;
  return lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
}
