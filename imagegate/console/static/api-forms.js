// Admin forms and buttons: each names an admin API call (data-method, data-path); fields become
// the JSON body. Results and errors are written with textContent only: nothing is parsed as HTML.
import { callApi, errorText } from "./api.js";

function fieldValue(input) {
  const type = input.dataset.type;
  if (type === "bool") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (type === "number") return Number(text);
  if (type === "list") return text.split(",").map((s) => s.trim()).filter(Boolean);
  if (type === "json") return JSON.parse(text);
  return text;
}

async function submitForm(form) {
  const error = form.querySelector('[data-role="error"]');
  if (error) error.textContent = "";
  let path = form.dataset.path;
  const body = {};
  try {
    for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
      const value = fieldValue(input);
      if (form.dataset.pathTemplate && input.hasAttribute("data-path-only")) {
        path = form.dataset.pathTemplate.replace(`{${input.name}}`, encodeURIComponent(value ?? ""));
        continue;
      }
      if (value !== undefined) body[input.name] = value;
    }
  } catch (exc) {
    if (error) error.textContent = String(exc);
    return;
  }
  const response = await callApi(form.dataset.method, path, body);
  if (!response.ok) {
    if (error) error.textContent = await errorText(response);
    return;
  }
  const result = await response.json().catch(() => null);
  if (form.dataset.secret && result?.key) {
    // The secret is shown once, here, and never again: the page is not reloaded.
    const box = document.getElementById(form.dataset.secret + "-box");
    document.getElementById(form.dataset.secret).textContent = result.key;
    box.hidden = false;
    form.reset();
    return;
  }
  window.location.reload();
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.api-form");
  if (!form) return;
  event.preventDefault();
  submitForm(form);
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-method]");
  if (!button || button.form) return;
  event.preventDefault();
  button.disabled = true;
  const response = await callApi(button.dataset.method, button.dataset.path, {});
  button.disabled = false;
  const target = button.dataset.result ? document.getElementById(button.dataset.result) : null;
  if (target) {
    const text = response.ok ? JSON.stringify(await response.json(), null, 1) : await errorText(response);
    target.textContent = text;
    return;
  }
  if (!response.ok) {
    alert(await errorText(response));
    return;
  }
  window.location.reload();
});
