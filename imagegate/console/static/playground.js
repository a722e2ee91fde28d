// The playground: builds an OpenAI-style request, sends it through the console pass-through and
// shows partial previews (SSE) and the results. Text from the server is set with textContent.
import { callApi, errorText } from "./api.js";
import { sizeProblem } from "./sizes.js";

const models = JSON.parse(document.getElementById("models-data").textContent);
const form = document.getElementById("playground");
const sizeSelect = document.getElementById("size");
const customSize = document.getElementById("custom-size");
const sizeError = document.getElementById("size-error");
const statusLine = document.getElementById("status");
const errorLine = document.getElementById("error");
const preview = document.getElementById("preview");
const results = document.getElementById("results");

const model = () => models.find((m) => m.id === form.model.value) ?? models[0];
const mode = () => form.querySelector('input[name="mode"]:checked').value;

function chosenSize() {
  return sizeSelect.value === "custom" ? customSize.value.trim() : sizeSelect.value;
}

function checkSize() {
  const problem = sizeSelect.value === "custom" ? sizeProblem(chosenSize(), model()?.sizes) : null;
  sizeError.textContent = problem ?? "";
  customSize.setCustomValidity(problem ?? "");
  return problem === null;
}

function refreshForm() {
  form.querySelector(".custom-size").hidden = sizeSelect.value !== "custom";
  form.querySelector(".edit-only").hidden = mode() !== "edit";
  form.n.max = String(model()?.max_n ?? 10);
  checkSize();
}

form.addEventListener("change", refreshForm);
customSize.addEventListener("input", checkSize);
refreshForm();

const readAsDataUrl = (file) =>
  new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });

function addResult(src, caption) {
  results.querySelector(".empty")?.remove();
  const figure = document.createElement("figure");
  figure.className = "thumb";
  const link = document.createElement("a");
  link.href = src;
  link.target = "_blank";
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  img.dataset.testid = "result-image";
  img.setAttribute("data-testid", "result-image");
  link.append(img);
  const download = document.createElement("a");
  download.href = src;
  download.download = "";
  download.textContent = results.dataset.download;
  const text = document.createElement("figcaption");
  text.textContent = caption;
  figure.append(link, text, download);
  results.prepend(figure);
}

function imageSrc(item, format) {
  if (item.url) {
    try {
      return new URL(item.url).pathname; // hosted images are served by this gateway
    } catch {
      return item.url;
    }
  }
  return item.b64_json ? `data:image/${format ?? "png"};base64,${item.b64_json}` : null;
}

async function buildBody() {
  const m = model();
  const body = { model: m.id, prompt: form.prompt.value, size: chosenSize(), response_format: "url" };
  for (const name of ["quality", "output_format", "background"]) body[name] = form[name].value;
  body.n = Number(form.n.value || 1);
  if (body.output_format !== "png") body.output_compression = Number(form.output_compression.value || 100);
  if (mode() === "edit") {
    const files = [...form.images.files];
    body.images = await Promise.all(files.map(async (f) => ({ image_url: await readAsDataUrl(f) })));
    if (form.mask.files[0]) body.mask = { image_url: await readAsDataUrl(form.mask.files[0]) };
  }
  const partials = Number(form.partial_images.value || 0);
  if (partials > 0) {
    body.stream = true;
    body.partial_images = partials;
  }
  return body;
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (data && data !== "[DONE]") onEvent(JSON.parse(data));
    }
  }
}

async function runChat(m) {
  const text = `${chosenSize()} '${form.prompt.value}'`;
  const response = await callApi("POST", "/v1/chat/completions", {
    model: m.id,
    messages: [{ role: "user", content: text }],
    metadata: { quality: form.quality.value },
  });
  if (!response.ok) throw new Error(await errorText(response));
  const message = (await response.json()).choices?.[0]?.message ?? {};
  // The images list when the gateway sends one, else the Markdown image links of the reply.
  const urls = (message.images ?? []).map((image) => image.image_url.url);
  if (!urls.length) {
    for (const match of (message.content ?? "").matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)) urls.push(match[1]);
  }
  for (const url of urls) addResult(imageSrc({ url }), form.prompt.value);
}

async function run() {
  const m = model();
  if (m.kind === "chat-image") return runChat(m);
  const body = await buildBody();
  const path = mode() === "edit" ? "/v1/images/edits" : "/v1/images/generations";
  const response = await callApi("POST", path, body);
  if (!response.ok) throw new Error(await errorText(response));
  if (!body.stream) {
    const result = await response.json();
    for (const item of result.data ?? []) addResult(imageSrc(item, result.output_format), body.prompt);
    return;
  }
  await readEvents(response, (event) => {
    if (event.type === "error") throw new Error(event.error?.message ?? "error");
    const src = imageSrc(event, event.output_format);
    if (event.type.endsWith("partial_image")) {
      preview.replaceChildren();
      const img = document.createElement("img");
      img.src = src;
      img.alt = "preview";
      preview.append(img);
    } else if (event.type.endsWith("completed")) {
      preview.replaceChildren();
      addResult(src, body.prompt);
    }
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!checkSize()) return;
  errorLine.textContent = "";
  statusLine.textContent = statusLine.dataset.working;
  form.generate.disabled = true;
  const started = performance.now();
  try {
    await run();
    statusLine.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (exc) {
    statusLine.textContent = "";
    errorLine.textContent = exc.message;
  } finally {
    form.generate.disabled = false;
  }
});
