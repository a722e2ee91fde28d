// Calls the gateway's own API through the console's same-origin pass-through. The browser sends
// its session cookie; the page's CSRF token goes in a header. The key never reaches the browser.
export const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export async function callApi(method, path, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch("/console/api" + path, init);
}

export async function errorText(response) {
  try {
    const body = await response.json();
    return body?.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}
