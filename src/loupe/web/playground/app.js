// The playground's state and wiring: compose a message, estimate it, stream the answer, show the code.

import { API_BASE, ApiError, estimate, listModels, streamChat } from "./api.js";
import { conversationScript, curlCode, pythonCode } from "./codegen.js";
import { kindOf, readFile, urlName, watchDropAndPaste } from "./intake.js";
import { showMarkdown } from "./markdown.js";
import { answerCost } from "./money.js";
import * as ui from "./ui.js";

const KEY_STORAGE = "loupe.playground.apiKey";
const ESTIMATE_DELAY_MS = 300;
const PHONE = window.matchMedia("(max-width: 720px)");

const state = {
  models: [],
  history: [], // the user and assistant messages sent and answered so far, as the API receives them
  attachments: [], // pending images and videos: { kind, name, url, detail, plan, error }
  language: "python",
  streaming: null, // the AbortController of the answer being streamed
  conversation: 0, // bumped by "New conversation", so that a stopped answer does not join the new one
  estimating: null,
  estimateTimer: 0,
};

const apiKey = () => ui.$("#api-key").value.trim();
const currentModel = () => state.models.find((m) => m.id === ui.$("#model").value);

/** An attachment as the content part the API takes: `image_url`, or `video_url` for a video. */
function partOf({ kind, url, detail }) {
  return kind === "video" ? { type: "video_url", video_url: { url, detail } } : { type: "image_url", image_url: { url, detail } };
}

function pendingMessage() {
  const content = state.attachments.map(partOf);
  const text = ui.$("#prompt").value;
  if (text.trim()) content.push({ type: "text", text });
  return content.length ? { role: "user", content } : null;
}

function systemMessages() {
  const system = ui.$("#system-prompt").value.trim();
  return system ? [{ role: "system", content: system }] : [];
}

// A number field as a request field: left empty, the server's default applies and it is not sent.
function numberField(selector, parse) {
  const raw = ui.$(selector).value.trim();
  const value = raw === "" ? Number.NaN : parse(raw);
  return Number.isFinite(value) ? value : undefined;
}

/** The request's fields besides model and messages, as the settings say. */
function options() {
  const fields = {
    max_tokens: numberField("#max-tokens", (v) => Math.max(1, Number.parseInt(v, 10))),
    temperature: numberField("#temperature", Number.parseFloat),
    top_p: numberField("#top-p", Number.parseFloat),
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** The request as it will be sent: the same body goes to /v1/estimate and to the code view. */
function requestBody() {
  const pending = pendingMessage();
  return {
    model: ui.$("#model").value,
    messages: [...systemMessages(), ...state.history, ...(pending ? [pending] : [])],
    ...options(),
    stream: true,
    stream_options: { include_usage: true },
  };
}

function changed() {
  renderAttachments();
  renderCode();
  scheduleEstimate();
}

// -- images and videos -------------------------------------------------------------------------

function attach(kind, name, url) {
  state.attachments.push({ kind, name, url, detail: ui.$("#default-detail").value, plan: null, error: null });
  changed();
}

async function addFiles(files) {
  for (const file of files) {
    try {
      const kind = kindOf(file);
      attach(kind, file.name || `pasted ${kind}`, await readFile(file));
    } catch (error) {
      ui.showError(ui.$("#error"), { message: `Could not read ${file.name}: ${error.message}` });
    }
  }
}

function addUrl() {
  const input = ui.$("#image-url");
  const url = input.value.trim();
  if (!/^(https?:\/\/|data:)/i.test(url)) {
    ui.showError(ui.$("#error"), { message: "An image or video URL starts with https://, http:// or data:." });
    return;
  }
  attach(kindOf(url), urlName(url), url);
  input.value = "";
}

function renderAttachments() {
  ui.renderAttachments(ui.$("#attachments"), state.attachments, {
    onDetail: (item, detail) => {
      Object.assign(item, { detail, plan: null, error: null });
      changed();
    },
    onRemove: (item) => {
      state.attachments = state.attachments.filter((other) => other !== item);
      changed();
    },
  });
}

// -- estimate ----------------------------------------------------------------------------------

function scheduleEstimate() {
  clearTimeout(state.estimateTimer);
  state.estimating?.abort();
  const body = requestBody();
  if (!pendingMessage() || !body.model) {
    ui.renderEstimate(ui.$("#estimate"), "empty", null, "Add text, an image or a video to see the estimate.");
    return;
  }
  ui.renderEstimate(ui.$("#estimate"), "pending", null, "Estimating...");
  state.estimateTimer = setTimeout(() => runEstimate(body), ESTIMATE_DELAY_MS);
}

async function runEstimate(body) {
  const controller = new AbortController();
  state.estimating = controller;
  const attachments = [...state.attachments];
  try {
    const result = await estimateAttachments(body, attachments, controller.signal);
    renderAttachments();
    if (result) ui.renderEstimate(ui.$("#estimate"), "ready", result);
  } catch (error) {
    if (error.name === "AbortError") return;
    renderAttachments();
    ui.renderEstimate(ui.$("#estimate"), "error", null, `Cannot estimate: ${ui.describeError(error)}`);
  }
}

/**
 * Estimate `body`, whose last message holds `attachments` first. An image or video the server
 * refuses gets the reason, and the others are estimated again without it, so each keeps its plan;
 * the first refusal is thrown once every attachment has its plan or its reason.
 */
async function estimateAttachments(body, attachments, signal) {
  let refusal = null;
  let accepted = attachments;
  for (;;) {
    const pending = body.messages.at(-1);
    try {
      const result = await estimate(body, { apiKey: apiKey(), signal });
      const plans = { image: result.images, video: result.videos ?? [] };
      const seen = { image: countParts(body.messages, "image_url"), video: countParts(body.messages, "video_url") };
      for (const kind of ["image", "video"]) seen[kind] -= accepted.filter((item) => item.kind === kind).length;
      for (const item of accepted) {
        Object.assign(item, { plan: plans[item.kind][seen[item.kind]] ?? null, error: null });
        seen[item.kind] += 1;
      }
      if (refusal) throw refusal;
      return result;
    } catch (error) {
      const refused = accepted[imageIndexOf(error.param, body.messages.length - 1)];
      if (!refused || error === refusal) throw error;
      Object.assign(refused, { plan: null, error: `Not accepted: ${error.message}` });
      refusal ??= error;
      const at = accepted.indexOf(refused);
      accepted = accepted.filter((image) => image !== refused);
      const content = pending.content.filter((part, i) => i !== at);
      if (!content.length) throw refusal;
      body = { ...body, messages: [...body.messages.slice(0, -1), { ...pending, content }] };
    }
  }
}

// messages[4].content[1].image_url -> 1 when message 4 is the pending one (its attachments come first).
function imageIndexOf(param, pendingIndex) {
  const match = /^messages\[(\d+)\]\.content\[(\d+)\]/.exec(param ?? "");
  return match && Number(match[1]) === pendingIndex ? Number(match[2]) : -1;
}

function countParts(messages, type) {
  return messages.reduce((n, m) => n + (Array.isArray(m.content) ? m.content.filter((p) => p.type === type).length : 0), 0);
}

// -- sending -----------------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  if (state.streaming) {
    state.streaming.abort();
    return;
  }
  const pending = pendingMessage();
  const model = currentModel();
  if (!pending || !model) return;
  const body = requestBody();
  const conversation = state.conversation;
  ui.showError(ui.$("#error"), null);
  const messages = ui.$("#messages");
  const question = ui.renderMessage(messages, "user", pending.content);
  const answer = ui.renderMessage(messages, "assistant", "");
  state.streaming = new AbortController();
  setSending(true);
  let text = "";
  let frame = 0;
  const show = () => {
    frame = 0;
    showMarkdown(answer.text, text);
  };
  try {
    for await (const chunk of streamChat(body, { apiKey: apiKey(), signal: state.streaming.signal })) {
      text += chunk.choices?.[0]?.delta?.content ?? "";
      frame ||= requestAnimationFrame(show);
      if (chunk.usage) ui.renderUsage(answer.item, chunk.usage, answerCost(chunk.usage, model), model.currency);
    }
    finishTurn(pending, text, answer, "done");
  } catch (error) {
    if (error.name === "AbortError") {
      if (conversation === state.conversation) finishTurn(pending, text, answer, "stopped");
    } else {
      question.item.remove();
      answer.item.remove();
      ui.showError(ui.$("#error"), error instanceof ApiError ? error : { message: String(error) });
    }
  } finally {
    cancelAnimationFrame(frame);
    state.streaming = null;
    setSending(false);
  }
}

// The turn joins the history; the composer is emptied for the next question.
function finishTurn(pending, text, answer, outcome) {
  showMarkdown(answer.text, text);
  answer.item.dataset.state = outcome;
  state.history.push(pending, { role: "assistant", content: text });
  state.attachments = [];
  ui.$("#prompt").value = "";
  changed();
}

function setSending(sending) {
  const button = ui.$("#send");
  button.textContent = sending ? "Stop" : "Send";
  button.classList.toggle("stop", sending);
}

function newConversation() {
  state.conversation += 1;
  state.streaming?.abort();
  state.history = [];
  state.attachments = [];
  ui.$("#messages").replaceChildren();
  ui.$("#prompt").value = "";
  ui.showError(ui.$("#error"), null);
  changed();
}

// -- code --------------------------------------------------------------------------------------

function code(short) {
  const body = requestBody();
  if (state.language === "curl") return curlCode(body, { apiBase: API_BASE, withKey: Boolean(apiKey()), short });
  return pythonCode(body, { apiBase: API_BASE, short });
}

function renderCode() {
  ui.$("#code-view").textContent = code(true);
}

async function copyCode() {
  const button = ui.$("#copy-code");
  try {
    await navigator.clipboard.writeText(code(false));
    button.textContent = "Copied";
  } catch (error) {
    button.textContent = "Copy failed";
    ui.showError(ui.$("#error"), { message: `The browser refused the clipboard: ${error.message}` });
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

/** Download the conversation as a Python script that asks its questions again, in order. */
function exportConversation() {
  const turns = state.history.filter((m) => m.role === "user");
  if (!turns.length) {
    ui.showError(ui.$("#error"), { message: "Nothing to export yet: send a first message." });
    return;
  }
  const script = conversationScript({
    apiBase: API_BASE,
    model: ui.$("#model").value,
    system: ui.$("#system-prompt").value.trim(),
    turns,
    options: options(),
  });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([script], { type: "text/x-python" }));
  link.download = "loupe-conversation.py";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function selectLanguage(tab) {
  state.language = tab.dataset.lang;
  for (const other of document.querySelectorAll("[role=tab]")) {
    other.setAttribute("aria-selected", String(other === tab));
  }
  renderCode();
}

// -- start -------------------------------------------------------------------------------------

async function loadModels() {
  const select = ui.$("#model");
  try {
    state.models = await listModels(apiKey());
  } catch (error) {
    state.models = [];
    select.replaceChildren(new Option("no models: see the note", ""));
    showModel();
    keyNotice(error);
    return;
  }
  ui.showNotice(ui.$("#notice"), null);
  ui.showError(ui.$("#error"), null);
  const chosen = select.value;
  select.replaceChildren(...state.models.map((m) => new Option(m.id, m.id)));
  if (state.models.some((m) => m.id === chosen)) select.value = chosen;
  showModel();
}

// Why the models could not be listed, said as what to do: a missing or refused key is no error.
function keyNotice(error) {
  const notice = ui.$("#notice");
  if (error.code === "INVALID_API_KEY" || error.code === "FAILED_TO_AUTH") {
    const title = error.code === "INVALID_API_KEY" ? "This server needs an API key" : "This API key is not accepted";
    const why = error.code === "INVALID_API_KEY"
      ? "Paste yours in API key (it starts with lp-); it stays in this browser."
      : "It is unknown or revoked: check it, or ask the operator for a new one.";
    ui.showNotice(notice, title, why,
      ui.phrase("An operator makes one with ", ui.code("loupe keys create --name NAME"), "."));
    ui.$("#panel").open = true;
    ui.$("#api-key").focus();
    return;
  }
  ui.showNotice(notice, null);
  ui.showError(ui.$("#error"), error);
}

function showModel() {
  const model = currentModel();
  ui.$("#model-info").textContent = model ? ui.modelInfo(model) : "";
  ui.$("#panel-model").textContent = model ? model.id : "";
  changed();
}

/** Keep the conversation scrolled to its end while it grows, unless the reader scrolled up.
 * Only the reader's own hand (wheel, touch, keys, the scroll bar) stops following: a scroll
 * event may also come from the page itself (its own jump to the end, or the browser pulling the
 * position in when an answer is re-rendered shorter) and arrive after the answer grew again
 * (a slow phone, a busy machine), so a position short of the end alone must not read as the
 * reader leaving it. Reaching the end again resumes following. */
function followTheEnd(list) {
  let atEnd = true;
  let handled = false;  // the reader touched the list since it was last at its end
  const toEnd = () => { if (atEnd) list.scrollTop = list.scrollHeight; };
  const sizes = new ResizeObserver(toEnd);
  for (const type of ["wheel", "touchstart", "pointerdown", "keydown"]) {
    list.addEventListener(type, () => { handled = true; }, { passive: true });
  }
  list.addEventListener("scroll", () => {
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - 24) {
      atEnd = true;
      handled = false;
    } else if (handled) {
      atEnd = false;
    }
  });
  new MutationObserver((changes) => {
    for (const change of changes) change.addedNodes.forEach((node) => node instanceof Element && sizes.observe(node));
    toEnd();
  }).observe(list, { childList: true, subtree: true, characterData: true, attributes: true });
  sizes.observe(list);
}

function onPromptKey(event) {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  ui.$("#composer").requestSubmit();
}

function wire() {
  const keyInput = ui.$("#api-key");
  keyInput.value = localStorage.getItem(KEY_STORAGE) ?? "";
  keyInput.addEventListener("change", () => {
    if (apiKey()) localStorage.setItem(KEY_STORAGE, apiKey());
    else localStorage.removeItem(KEY_STORAGE);
    loadModels();
  });
  ui.$("#panel").open = !PHONE.matches;
  ui.$("#model").addEventListener("change", showModel);
  for (const id of ["#max-tokens", "#temperature", "#top-p", "#system-prompt", "#prompt"]) {
    ui.$(id).addEventListener("input", changed);
  }
  ui.$("#file-input").addEventListener("change", async (event) => {
    await addFiles([...event.target.files]);
    event.target.value = "";
  });
  ui.$("#add-url").addEventListener("click", addUrl);
  ui.$("#image-url").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addUrl();
    }
  });
  ui.$("#composer").addEventListener("submit", send);
  ui.$("#prompt").addEventListener("keydown", onPromptKey);
  ui.$("#new-chat").addEventListener("click", newConversation);
  ui.$("#export").addEventListener("click", exportConversation);
  ui.$("#copy-code").addEventListener("click", copyCode);
  for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => selectLanguage(tab));

  followTheEnd(ui.$("#messages"));
  watchDropAndPaste(ui.$("#composer"), { onFiles: addFiles, onUrl: (url) => attach(kindOf(url), urlName(url), url) });
}

wire();
loadModels();
