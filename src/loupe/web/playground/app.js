// The playground's state and wiring: compose a message, estimate it, stream the answer, show the code.

import { API_BASE, ApiError, estimate, listModels, streamChat } from "./api.js";
import { curlCode, pythonCode } from "./codegen.js";
import { readFile, urlName, watchDropAndPaste } from "./intake.js";
import { answerCost } from "./money.js";
import * as ui from "./ui.js";

const KEY_STORAGE = "loupe.playground.apiKey";
const ESTIMATE_DELAY_MS = 300;

const state = {
  models: [],
  history: [], // the messages sent and answered so far, exactly as the API receives them
  images: [], // pending: { name, url, detail, plan }
  language: "python",
  streaming: null, // the AbortController of the answer being streamed
  conversation: 0, // bumped by "New conversation", so that a stopped answer does not join the new one
  estimating: null,
  estimateTimer: 0,
};

const apiKey = () => ui.$("#api-key").value.trim();
const currentModel = () => state.models.find((m) => m.id === ui.$("#model").value);

function pendingMessage() {
  const content = state.images.map(({ url, detail }) => ({
    type: "image_url",
    image_url: detail ? { url, detail } : { url },
  }));
  const text = ui.$("#prompt").value;
  if (text.trim()) content.push({ type: "text", text });
  return content.length ? { role: "user", content } : null;
}

/** The request as it will be sent: the same body goes to /v1/estimate and to the code view. */
function requestBody() {
  const pending = pendingMessage();
  return {
    model: ui.$("#model").value,
    messages: pending ? [...state.history, pending] : [...state.history],
    max_tokens: Math.max(1, Number.parseInt(ui.$("#max-tokens").value, 10) || 1),
    stream: true,
    stream_options: { include_usage: true },
  };
}

function changed() {
  renderAttachments();
  renderCode();
  scheduleEstimate();
}

// -- images ------------------------------------------------------------------------------------

function addImage(name, url) {
  state.images.push({ name, url, detail: "", plan: null });
  changed();
}

async function addFiles(files) {
  for (const file of files) {
    try {
      addImage(file.name || "pasted image", await readFile(file));
    } catch (error) {
      ui.showError(ui.$("#error"), { message: `Could not read ${file.name}: ${error.message}` });
    }
  }
}

function addUrl() {
  const input = ui.$("#image-url");
  const url = input.value.trim();
  if (!/^(https?:\/\/|data:)/i.test(url)) {
    ui.showError(ui.$("#error"), { message: "An image URL starts with https://, http:// or data:." });
    return;
  }
  addImage(urlName(url), url);
  input.value = "";
}

function renderAttachments() {
  ui.renderAttachments(ui.$("#attachments"), state.images, {
    onDetail: (image, detail) => {
      image.detail = detail;
      image.plan = null;
      changed();
    },
    onRemove: (image) => {
      state.images = state.images.filter((other) => other !== image);
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
    ui.renderEstimate(ui.$("#estimate"), "empty", null, "Add text or an image to see the estimate.");
    return;
  }
  ui.renderEstimate(ui.$("#estimate"), "pending", null, "Estimating...");
  state.estimateTimer = setTimeout(() => runEstimate(body), ESTIMATE_DELAY_MS);
}

async function runEstimate(body) {
  const controller = new AbortController();
  state.estimating = controller;
  try {
    const result = await estimate(body, { apiKey: apiKey(), signal: controller.signal });
    const first = countImages(state.history);
    state.images.forEach((image, i) => { image.plan = result.images[first + i] ?? null; });
    renderAttachments();
    ui.renderEstimate(ui.$("#estimate"), "ready", result);
  } catch (error) {
    if (error.name === "AbortError") return;
    ui.renderEstimate(ui.$("#estimate"), "error", null, `Cannot estimate: ${ui.describeError(error)}`);
  }
}

function countImages(messages) {
  return messages.reduce(
    (n, m) => n + (Array.isArray(m.content) ? m.content.filter((p) => p.type === "image_url").length : 0), 0);
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
  try {
    for await (const chunk of streamChat(body, { apiKey: apiKey(), signal: state.streaming.signal })) {
      text += chunk.choices?.[0]?.delta?.content ?? "";
      answer.text.textContent = text;
      if (chunk.usage) ui.renderUsage(answer.item, chunk.usage, answerCost(chunk.usage, model), model.currency);
    }
    finishTurn(pending, text, answer.item, "done");
  } catch (error) {
    if (error.name === "AbortError") {
      if (conversation === state.conversation) finishTurn(pending, text, answer.item, "stopped");
    } else {
      question.item.remove();
      answer.item.remove();
      ui.showError(ui.$("#error"), error instanceof ApiError ? error : { message: String(error) });
    }
  } finally {
    state.streaming = null;
    setSending(false);
  }
}

// The turn joins the history; the composer is emptied for the next question.
function finishTurn(pending, text, item, outcome) {
  item.dataset.state = outcome;
  state.history.push(pending, { role: "assistant", content: text });
  state.images = [];
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
  state.images = [];
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
    ui.showError(ui.$("#error"), error);
    return;
  }
  ui.showError(ui.$("#error"), null);
  const chosen = select.value;
  select.replaceChildren(...state.models.map((m) => new Option(m.id, m.id)));
  if (state.models.some((m) => m.id === chosen)) select.value = chosen;
  showModel();
}

function showModel() {
  const model = currentModel();
  ui.$("#model-info").textContent = model ? ui.modelInfo(model) : "";
  changed();
}

function wire() {
  const keyInput = ui.$("#api-key");
  keyInput.value = localStorage.getItem(KEY_STORAGE) ?? "";
  keyInput.addEventListener("change", () => {
    if (apiKey()) localStorage.setItem(KEY_STORAGE, apiKey());
    else localStorage.removeItem(KEY_STORAGE);
    loadModels();
  });
  ui.$("#model").addEventListener("change", showModel);
  ui.$("#max-tokens").addEventListener("input", changed);
  ui.$("#prompt").addEventListener("input", changed);
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
  ui.$("#prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ui.$("#composer").requestSubmit();
  });
  ui.$("#new-chat").addEventListener("click", newConversation);
  ui.$("#copy-code").addEventListener("click", copyCode);
  for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => selectLanguage(tab));

  watchDropAndPaste(ui.$("#composer"), { onFiles: addFiles, onUrl: (url) => addImage(urlName(url), url) });
}

wire();
loadModels();
