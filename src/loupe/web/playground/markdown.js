// Answers rendered as Markdown, safely: model output can never add HTML, scripts or remote images.
//
// markdown-it runs with raw HTML off (tags in the text are shown as text) and validates link
// targets (no javascript:, vbscript:, file: or data: links). Images are not rendered at all: a
// model could otherwise make the browser fetch any URL (a way to leak the conversation). Links
// open in a new tab without access to this page.

import markdownit from "./vendor/markdown-it.esm.min.js";

const md = markdownit({ html: false, linkify: true, typographer: false });
md.disable("image");

const renderToken = (tokens, index, options, env, self) => self.renderToken(tokens, index, options);
md.renderer.rules.link_open = (tokens, index, options, env, self) => {
  tokens[index].attrSet("target", "_blank");
  tokens[index].attrSet("rel", "noopener noreferrer nofollow");
  return renderToken(tokens, index, options, env, self);
};

/** The HTML of `text` rendered as Markdown; it holds no element markdown-it did not make. */
export function markdownHtml(text) {
  return md.render(text);
}

/** Show `text` as Markdown in `element`. */
export function showMarkdown(element, text) {
  element.innerHTML = markdownHtml(text);
}
