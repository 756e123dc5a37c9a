// DOM rendering for the playground: attachments, messages, the estimate, usage and errors.

export const $ = (selector) => document.querySelector(selector);

const DETAILS = [
  ["auto", "detail: auto"],
  ["low", "detail: low"],
  ["high", "detail: high"],
];

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function thumbnail(url, label, kind = "image") {
  // A video shows its first frame, muted and still: the preview costs no playback.
  const node = kind === "video"
    ? el("video", { src: url, muted: "", preload: "metadata", "aria-label": label })
    : el("img", { src: url, alt: label, loading: "lazy" });
  node.addEventListener("error", () => node.replaceWith(el("span", { class: "no-preview" }, "no preview")));
  return node;
}

/** The images and videos waiting to be sent, each with its detail choice, its plan once
 * estimated (or why it could not be), and Remove. */
export function renderAttachments(list, attachments, { onDetail, onRemove }) {
  list.replaceChildren(
    ...attachments.map((item) => {
      const select = el("select", { "aria-label": `detail for ${item.name}` },
        ...DETAILS.map(([value, label]) => el("option", { value }, label)));
      select.value = item.detail;
      select.addEventListener("change", () => onDetail(item, select.value));
      const remove = el("button", { type: "button", class: "remove", "aria-label": `remove ${item.name}` }, "x");
      remove.addEventListener("click", () => onRemove(item));
      const note = item.error ? item.error : item.plan ? planText(item.plan, item.kind) : "estimating...";
      return el("li", { class: "attachment", "data-kind": item.kind, "data-state": item.error ? "error" : item.plan ? "ready" : "pending" },
        thumbnail(item.url, item.name, item.kind),
        el("span", { class: "name", title: item.name }, item.name),
        el("span", { class: "plan", title: note }, note),
        select, remove);
    }),
  );
}

function planText(plan, kind) {
  const resized = `${plan.resized_width}x${plan.resized_height}`;
  if (kind === "video") {
    return `${plan.width}x${plan.height}, ${plan.duration_s} s -> ${plan.frames} frames at ${resized}, ${plan.tokens} tokens`;
  }
  return `${plan.width}x${plan.height} -> ${resized}, ${plan.tokens} tokens`;
}

/** One conversation turn: the content parts as sent, images and videos shown as thumbnails.
 * Answers are shown as Markdown by the caller; other text as typed. */
export function renderMessage(list, role, content) {
  const parts = typeof content === "string" ? [{ type: "text", text: content }] : content;
  const body = el("div", { class: "content" });
  const media = parts.filter((p) => p.type === "image_url" || p.type === "video_url");
  if (media.length) {
    body.append(el("div", { class: "thumbs" }, ...media.map((p) => p.type === "video_url"
      ? thumbnail(p.video_url.url, "video", "video")
      : thumbnail(p.image_url.url, "image"))));
  }
  const text = parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
  const paragraph = el("div", { class: "text" }, text);
  body.append(paragraph);
  const item = el("li", { class: `message ${role}`, "data-state": role === "assistant" ? "streaming" : "done" },
    el("span", { class: "role" }, role), body);
  list.append(item);
  return { item, text: paragraph };
}

/** The usage line under an answer: tokens from `usage`, and the cost computed from the model's prices. */
export function renderUsage(item, usage, cost, currency) {
  const details = usage.prompt_tokens_details ?? {};
  item.append(el("p", { class: "usage" },
    el("span", {}, "prompt ", el("b", { class: "prompt-tokens" }, String(usage.prompt_tokens))),
    el("span", {}, "image ", el("b", { class: "image-tokens" }, String(details.image_tokens ?? 0))),
    details.video_tokens ? el("span", {}, "video ", el("b", { class: "video-tokens" }, String(details.video_tokens))) : null,
    el("span", {}, "completion ", el("b", { class: "completion-tokens" }, String(usage.completion_tokens))),
    el("span", {}, "cost ", el("b", { class: "cost" }, `${cost} ${currency}`))));
}

/** The pre-flight estimate, or a note (`state` empty, pending, or error). */
export function renderEstimate(box, state, estimate = null, note = "") {
  box.dataset.state = state;
  if (!estimate) {
    box.replaceChildren(el("span", { id: "estimate-text" }, note));
    return;
  }
  box.replaceChildren(
    el("span", {}, "Estimate: ", el("b", { id: "estimate-prompt-tokens" }, String(estimate.prompt_tokens)),
      " prompt tokens (", el("span", { id: "estimate-image-tokens" }, String(estimate.image_tokens)),
      " image, ", ...(estimate.video_tokens
        ? [el("span", { id: "estimate-video-tokens" }, String(estimate.video_tokens)), " video, "] : []),
      String(estimate.text_tokens), " text)"),
    el("span", { id: "estimate-cost" },
      `cost ${estimate.cost.prompt_only} ${estimate.cost.currency}, at most ${estimate.cost.with_max_completion}`
      + ` with ${estimate.max_completion_tokens} completion tokens`),
  );
}

const whereOf = (error) => [error.code, error.param].filter(Boolean).join(" at ");

/** An error on one line: "message (CODE at messages[0].content[1].image_url)". */
export function describeError(error) {
  const where = whereOf(error);
  return where ? `${error.message} (${where})` : error.message;
}

/** A server error in words a person can act on: the message, then the code and the field. */
export function showError(box, error) {
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const where = whereOf(error);
  box.replaceChildren(el("strong", {}, "Error: "), el("span", { class: "error-message" }, error.message),
    where ? el("code", { class: "where" }, where) : null);
  box.hidden = false;
}

export function modelInfo(model) {
  const prices = `${model.input_token_price_per_m} / ${model.output_token_price_per_m} ${model.currency} per 1M tokens in / out`;
  const videos = model.max_videos ? `, ${model.max_videos} videos` : ", no video";
  return `${model.family}, context ${model.context_size}, up to ${model.max_images} images${videos}; ${prices}`;
}

/** A calm note above the conversation (what to do next), or none. `lines` are text or nodes. */
export function showNotice(box, title, ...lines) {
  if (!title) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.replaceChildren(el("strong", {}, title), ...lines.map((line) => el("p", {}, line)));
  box.hidden = false;
}

export function code(text) {
  return el("code", {}, text);
}

export function phrase(...parts) {
  return el("span", {}, ...parts);
}
