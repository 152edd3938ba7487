// Latchkey's dashboard: Settings → API Keys, over the public HTTP API only. The admin key is
// sent once, to POST /sessions, and never kept; the session (a short-lived JWT) lives in
// sessionStorage and is refreshed before it expires. A key's secret is shown once, in a dialog,
// and removed from the page when the dialog closes.
"use strict";

const SESSION = "latchkey.session";
// The API's base path (a stage, deployed), as the server wrote it into the page.
const BASE = document.querySelector('meta[name="latchkey-api"]').content;
const SOON_DAYS = 7;
const $ = (id) => document.getElementById(id);

let refreshTimer = null;
let nextCursor = null;

function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION));
  } catch {
    return null;
  }
}

function keep(token) {
  sessionStorage.setItem(SESSION, JSON.stringify({ token: token.token, expires_at: token.expires_at }));
  clearTimeout(refreshTimer);
  // A minute before it expires (or halfway, for short sessions), ask for a fresh one.
  const lifetime = Math.max(0, Date.parse(token.expires_at) - Date.now());
  refreshTimer = setTimeout(refresh, Math.max(lifetime - 60000, lifetime / 2));
}

function forget() {
  sessionStorage.removeItem(SESSION);
  clearTimeout(refreshTimer);
}

class ApiError extends Error {
  constructor(status, envelope) {
    const error = (envelope && envelope.error) || {};
    super(error.message || "The request failed");
    this.status = status;
    this.code = error.code || "INTERNAL";
  }
}

// One request to the API; the envelope's message and code on failure, never a raw status.
async function api(method, path, body, headers = {}) {
  const current = session();
  if (current && !headers["x-api-key"]) headers.authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, json);
    if (response.status === 401 && current && !headers["x-api-key"]) {
      signedOut(error.code === "EXPIRED_TOKEN" ? "Your session has expired: sign in again." : "Sign in again.");
    }
    throw error;
  }
  return json;
}

function show(message) {
  const notice = $("notice");
  notice.textContent = message || "";
  notice.hidden = !message;
}

function describe(error) {
  return `${error.message} (${error.code})`;
}

function signedOut(message) {
  forget();
  $("keys").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  show(message);
  $("admin-key").focus();
}

async function refresh() {
  try {
    keep(await api("POST", "/sessions"));
  } catch (error) {
    if (error.status !== 401) signedOut(`The session could not be renewed: ${describe(error)}`);
  }
}

async function signIn(event) {
  event.preventDefault();
  const field = $("admin-key");
  const key = field.value.trim();
  field.value = "";
  try {
    keep(await api("POST", "/sessions", undefined, { "x-api-key": key }));
    show("");
    await openKeys();
  } catch (error) {
    show(describe(error));
  }
}

function badge(key) {
  let status = key.status;
  if (status === "active" && key.expires_at && Date.parse(key.expires_at) - Date.now() < SOON_DAYS * 86400000) {
    status = "expires soon";
  }
  const span = document.createElement("span");
  span.className = `badge ${status.replace(" ", "-")}`;
  span.textContent = status;
  return span;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  row.append(td);
  return td;
}

function button(label, action, className = "secondary") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = label;
  element.addEventListener("click", action);
  return element;
}

function renderKeys(keys, append) {
  const rows = $("key-rows");
  if (!append) rows.replaceChildren();
  for (const key of keys) {
    const row = document.createElement("tr");
    row.dataset.id = key.id;
    cell(row, key.name);
    cell(row, key.hint).className = "mono";
    cell(row, key.permissions.join(", "));
    cell(row, key.tier);
    cell(row, badge(key));
    cell(row, when(key.created_at));
    cell(row, when(key.last_used_at));
    cell(row, when(key.expires_at));
    const actions = cell(row, "");
    if (key.status === "active") {
      actions.append(
        button("Rotate", () => openRotate(key), "secondary rotate"),
        button("Revoke", () => openRevoke(key), "danger revoke"),
      );
    }
    rows.append(row);
  }
  if (!rows.children.length) {
    const row = document.createElement("tr");
    cell(row, "No keys match.").colSpan = 9;
    rows.append(row);
  }
}

async function loadKeys(append = false) {
  const params = new URLSearchParams({ limit: "25" });
  const status = $("status-filter").value;
  if (status) params.set("status", status);
  if (append && nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await api("GET", `/keys?${params}`);
    renderKeys(page.keys, append);
    nextCursor = page.next_cursor;
    $("next-page").hidden = !nextCursor;
  } catch (error) {
    if (error.status !== 401) show(describe(error));
  }
}

async function openKeys() {
  $("sign-in").hidden = true;
  $("keys").hidden = false;
  $("sign-out").hidden = false;
  try {
    const me = await api("GET", "/whoami");
    $("who").textContent = `Tenant ${me.tenant_id}`;
  } catch (error) {
    return;
  }
  await loadKeys();
}

function fail(id, error) {
  const element = $(id);
  element.textContent = error ? describe(error) : "";
  element.hidden = !error;
}

// The secret, once: in a read-only field of a modal dialog, gone from the page when it closes.
function showSecret(issued, replaced) {
  $("secret-value").value = issued.key;
  const note = $("secret-replaced");
  note.hidden = !replaced;
  note.textContent = replaced ? `The old key works until ${when(issued.replaced_key_expires_at)}.` : "";
  $("secret-confirm").hidden = true;
  $("secret-dialog").showModal();
  $("secret-value").select();
}

function closeSecret() {
  $("secret-value").value = "";
  $("secret-confirm").hidden = true;
  $("secret-dialog").close();
  loadKeys();
}

async function createKey(event) {
  event.preventDefault();
  const permissions = [...document.querySelectorAll("input[name=permission]:checked")].map((box) => box.value);
  const body = { name: $("create-name").value.trim(), permissions, tier: $("create-tier").value };
  const expires = $("create-expires").value;
  if (expires) body.expires_at = new Date(`${expires}T23:59:59Z`).toISOString().replace(".000Z", "Z");
  try {
    const issued = await api("POST", "/keys", body);
    fail("create-error", null);
    $("create-dialog").close();
    $("create-form").reset();
    showSecret(issued, false);
  } catch (error) {
    fail("create-error", error);
  }
}

let target = null;

function openRotate(key) {
  target = key;
  $("rotate-name").textContent = key.name;
  fail("rotate-error", null);
  $("rotate-dialog").showModal();
}

async function rotateKey(event) {
  event.preventDefault();
  try {
    const grace = Number($("rotate-grace").value);
    const issued = await api("POST", `/keys/${encodeURIComponent(target.id)}/rotate`, { grace_period_seconds: grace });
    $("rotate-dialog").close();
    showSecret(issued, grace > 0);
  } catch (error) {
    fail("rotate-error", error);
  }
}

function openRevoke(key) {
  target = key;
  $("revoke-name").textContent = key.name;
  fail("revoke-error", null);
  $("revoke-dialog").showModal();
}

async function revokeKey(event) {
  event.preventDefault();
  try {
    await api("DELETE", `/keys/${encodeURIComponent(target.id)}`);
    $("revoke-dialog").close();
    await loadKeys();
  } catch (error) {
    fail("revoke-error", error);
  }
}

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signedOut("Signed out."));
  $("status-filter").addEventListener("change", () => loadKeys());
  $("next-page").addEventListener("click", () => loadKeys(true));
  $("create-open").addEventListener("click", () => {
    fail("create-error", null);
    $("create-dialog").showModal();
  });
  $("create-cancel").addEventListener("click", () => $("create-dialog").close());
  $("create-form").addEventListener("submit", createKey);
  $("rotate-cancel").addEventListener("click", () => $("rotate-dialog").close());
  $("rotate-form").addEventListener("submit", rotateKey);
  $("revoke-cancel").addEventListener("click", () => $("revoke-dialog").close());
  $("revoke-form").addEventListener("submit", revokeKey);
  $("secret-copy").addEventListener("click", async () => {
    await navigator.clipboard.writeText($("secret-value").value).catch(() => $("secret-value").select());
  });
  // Closing asks first: the key cannot be shown again.
  $("secret-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("secret-confirm").hidden = false;
    $("secret-close").focus();
  });
  $("secret-dialog").addEventListener("cancel", (event) => {
    event.preventDefault();
    $("secret-confirm").hidden = false;
  });
  $("secret-back").addEventListener("click", () => {
    $("secret-confirm").hidden = true;
  });
  $("secret-close").addEventListener("click", closeSecret);

  const current = session();
  if (current && Date.parse(current.expires_at) > Date.now()) {
    keep(current);
    openKeys();
  } else {
    signedOut(current ? "Your session has expired: sign in again." : "");
  }
}

start();
