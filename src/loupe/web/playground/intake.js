// Where images and videos come from besides the file picker: drag and drop, paste, and files read
// as data URLs.

/** A File as a `data:` URL, the form the chat API accepts for local images. */
export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv)$/i;

/** "video" for a video file (or a URL whose name says so), else "image". */
export function kindOf(fileOrUrl) {
  if (typeof fileOrUrl === "string") {
    return fileOrUrl.startsWith("data:video/") || VIDEO_NAME.test(urlName(fileOrUrl)) ? "video" : "image";
  }
  return fileOrUrl.type.startsWith("video/") ? "video" : "image";
}

/** The last path segment of an image or video URL, as its display name. */
export function urlName(url) {
  if (url.startsWith("data:")) return "data URL";
  return url.split(/[?#]/)[0].split("/").pop() || url;
}

function mediaFiles(items) {
  return [...items]
    .filter((item) => item.kind === "file" && /^(image|video)\//.test(item.type))
    .map((item) => item.getAsFile());
}

/** Image and video files pasted anywhere on the page, and files or a link dropped on `target`. */
export function watchDropAndPaste(target, { onFiles, onUrl }) {
  document.addEventListener("paste", (event) => {
    const files = mediaFiles(event.clipboardData?.items ?? []);
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
    const files = mediaFiles(event.dataTransfer.items);
    const url = event.dataTransfer.getData("text/uri-list").split("\n")[0].trim();
    if (files.length) onFiles(files);
    else if (url) onUrl(url);
  });
}
