// The current conversation as runnable code: Python with the official `openai` client, and curl.

const KEEP = 64; // characters of a long data URL kept when abbreviating for display

/** A long `data:` URL cut for display; the copied code always carries the whole string. */
export function abbreviate(text) {
  if (!text.startsWith("data:") || text.length <= KEEP * 2) return text;
  return `${text.slice(0, KEEP)}...[${(text.length - KEEP).toLocaleString("en")} more characters]`;
}

function abbreviated(value) {
  if (typeof value === "string") return abbreviate(value);
  if (Array.isArray(value)) return value.map(abbreviated);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, abbreviated(v)]));
  }
  return value;
}

// A JSON value as a Python literal. JSON string escapes are valid Python string escapes.
function python(value, indent = "") {
  const inner = `${indent}    `;
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string" || typeof value === "number") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => `${inner}${python(v, inner)},`).join("\n")}\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return "{}";
  const items = entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${python(v, inner)},`);
  return `{\n${items.join("\n")}\n${indent}}`;
}

const STREAM_FIELDS = new Set(["model", "messages", "stream", "stream_options"]);

// The request's other fields (max_tokens, temperature, ...) as Python keyword arguments.
function keywordArguments(body, indent) {
  return Object.entries(body)
    .filter(([name]) => !STREAM_FIELDS.has(name))
    .map(([name, value]) => `${indent}${name}=${python(value, indent)},\n`)
    .join("");
}

function clientCode(apiBase) {
  return `import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("LOUPE_BASE_URL", ${JSON.stringify(apiBase)}),
    api_key=os.environ.get("LOUPE_API_KEY", "unused"),
)
`;
}

/** Python for `body` (a chat-completions request with stream=true), against `apiBase`. */
export function pythonCode(body, { apiBase, short = false }) {
  const shown = short ? abbreviated(body.messages) : body.messages;
  return `${clientCode(apiBase)}stream = client.chat.completions.create(
    model=${JSON.stringify(body.model)},
    messages=${python(shown, "    ")},
${keywordArguments(body, "    ")}    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print("\\n", chunk.usage)
`;
}

/**
 * A Python script that replays a conversation: each user turn is sent with the history so far,
 * with the same model, system prompt and settings, and the answers are printed. `options` are
 * the request's fields besides model and messages (max_tokens, temperature, ...).
 */
export function conversationScript({ apiBase, model, system, turns, options }) {
  const opening = system ? [{ role: "system", content: system }] : [];
  return `"""A Loupe playground conversation: each question is asked again, with the answers so far."""

${clientCode(apiBase)}
messages = ${python(opening)}
questions = ${python(turns)}
for number, question in enumerate(questions, start=1):
    messages.append(question)
    reply = client.chat.completions.create(
        model=${JSON.stringify(model)},
        messages=messages,
${keywordArguments(options, "        ")}    )
    answer = reply.choices[0].message.content
    messages.append({"role": "assistant", "content": answer})
    print(f"--- answer {number} ({reply.usage.prompt_tokens} prompt tokens, {reply.usage.completion_tokens} completion tokens)")
    print(answer)
`;
}

/** curl for `body`; the JSON goes through a quoted here-document, so nothing in it is expanded. */
export function curlCode(body, { apiBase, withKey, short = false }) {
  const shown = short ? { ...body, messages: abbreviated(body.messages) } : body;
  const auth = withKey ? `  -H "Authorization: Bearer $LOUPE_API_KEY" \\\n` : "";
  return `curl -sN ${apiBase}/chat/completions \\
  -H "Content-Type: application/json" \\
${auth}  -d @- <<'LOUPE_JSON'
${JSON.stringify(shown, null, 2)}
LOUPE_JSON
`;
}
