// Where images come from besides the file picker: drag and drop, paste, and files read as data URLs.

/** A File as a `data:` URL, the form the chat API accepts for local images. */
export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** The last path segment of an image URL, as its display name. */
export function urlName(url) {
  if (url.startsWith("data:")) return "data URL";
  return url.split(/[?#]/)[0].split("/").pop() || url;
}

function imageFiles(items) {
  return [...items].filter((item) => item.kind === "file" && item.type.startsWith("image/")).map((i) => i.getAsFile());
}

/** Image files pasted anywhere on the page, and files or a link dropped on `target`. */
export function watchDropAndPaste(target, { onFiles, onUrl }) {
  document.addEventListener("paste", (event) => {
    const files = imageFiles(event.clipboardData?.items ?? []);
    if (files.length) {
      event.preventDefault();
      onFiles(files);
    }
  });
  target.addEventListener("dragover", (event) => {
    event.preventDefault();
    target.classList.add("dropping");
  });
  target.addEventListener("dragleave", () => target.classList.remove("dropping"));
  target.addEventListener("drop", (event) => {
    event.preventDefault();
    target.classList.remove("dropping");
    const files = imageFiles(event.dataTransfer.items);
    const url = event.dataTransfer.getData("text/uri-list").split("\n")[0].trim();
    if (files.length) onFiles(files);
    else if (url) onUrl(url);
  });
}
