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

const VIEWS = { keys: "API Keys", key: "API Keys", datasources: "Datasources", analytics: "Analytics", audit: "Audit log" };

function view(name) {
  for (const id of Object.keys(VIEWS)) $(id).hidden = id !== name;
  $("sign-in").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  $("crumb").textContent = VIEWS[name];
}

function signedOut(message) {
  forget();
  for (const id of Object.keys(VIEWS)) $(id).hidden = true;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("crumb").textContent = "Sign in";
  show(message);
  $("admin-key").focus();
}

async function refresh() {
  try {
    keep(await api("POST", "/sessions"));
  } catch (error) {
    // A provider's session is not renewed here (403): it lasts what the provider gave it.
    if (error.status !== 401 && error.status !== 403) signedOut(`The session could not be renewed: ${describe(error)}`);
  }
}

// A provider's sign-in may hand the page a session in the URL's fragment (`#session=JWT`), which
// never reaches a server or a log; it is taken out of the address bar and the history at once.
function handedOver() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("session");
  if (!token) return null;
  history.replaceState(null, "", location.pathname + location.search);
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { token, expires_at: new Date(claims.exp * 1000).toISOString() };
  } catch {
    return { token, expires_at: new Date(Date.now() + 60000).toISOString() };
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
  // Disabled matters only while the key would otherwise work.
  if (status !== "revoked" && status !== "expired" && key.enabled === false) status = "disabled";
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
    cell(row, button(key.name, () => openKey(key.id), "link name"));
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
  view("keys");
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

// The secret, once: in a read-only field of a modal dialog, gone from the page when it closes;
// then the view it came from is loaded again.
let afterSecret = () => loadKeys();

function showSecret(issued, replaced, then = () => loadKeys()) {
  afterSecret = then;
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
  afterSecret();
}

function field(list, name, value) {
  const term = document.createElement("dt");
  term.textContent = name;
  const description = document.createElement("dd");
  if (value instanceof Node) description.append(value);
  else description.textContent = value;
  list.append(term, description);
}

const SVG = "http://www.w3.org/2000/svg";

// Requests per day as bars, one per day of the period (days without a count are zero).
function chart(usage, days) {
  const counted = new Map(usage.days.map((day) => [day.date, day.requests]));
  const series = [];
  for (let back = days - 1; back >= 0; back--) {
    const date = new Date(Date.now() - back * 86400000).toISOString().slice(0, 10);
    series.push({ date, requests: counted.get(date) || 0 });
  }
  const most = Math.max(1, ...series.map((day) => day.requests));
  const total = series.reduce((sum, day) => sum + day.requests, 0);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${days * 10} 60`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${total} requests in the last ${days} days`);
  svg.classList.add("chart");
  series.forEach((day, i) => {
    const height = Math.round((day.requests / most) * 56);
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(i * 10 + 1));
    bar.setAttribute("y", String(58 - height));
    bar.setAttribute("width", "8");
    bar.setAttribute("height", String(Math.max(height, 1)));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${day.date}: ${day.requests}`;
    bar.append(title);
    svg.append(bar);
  });
  const caption = document.createElement("figcaption");
  caption.textContent = `${total} requests in the last ${days} days (let through; deployed, counted once a minute)`;
  return [svg, caption];
}

// The outcomes of a verification, in the order the charts stack them (valid at the bottom).
const OUTCOMES = ["valid", "expired", "revoked", "disabled", "ip_not_allowed", "usage_exceeded", "rate_limited"];

// Verifications per day as stacked bars by outcome, one bar per day of the period.
function outcomeChart(answer, days) {
  const byDay = new Map(answer.buckets.map((bucket) => [bucket.start.slice(0, 10), bucket.counts]));
  const series = [];
  for (let back = days - 1; back >= 0; back--) {
    const date = new Date(Date.now() - back * 86400000).toISOString().slice(0, 10);
    const counts = byDay.get(date) || {};
    series.push({ date, counts, total: OUTCOMES.reduce((sum, o) => sum + (counts[o] || 0), 0) });
  }
  const most = Math.max(1, ...series.map((day) => day.total));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${days * 10} 60`);
  svg.setAttribute("role", "img");
  const totals = OUTCOMES.map((o) => `${answer.totals[o]} ${o.replaceAll("_", " ")}`).join(", ");
  svg.setAttribute("aria-label", `In the last ${days} days: ${totals}`);
  svg.classList.add("chart");
  series.forEach((day, i) => {
    let y = 58;
    for (const outcome of OUTCOMES) {
      const n = day.counts[outcome] || 0;
      if (!n) continue;
      const height = Math.max(1, Math.round((n / most) * 56));
      y -= height;
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", String(i * 10 + 1));
      bar.setAttribute("y", String(y));
      bar.setAttribute("width", "8");
      bar.setAttribute("height", String(height));
      bar.classList.add(`outcome-${outcome}`);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${day.date}: ${n} ${outcome.replaceAll("_", " ")}`;
      bar.append(title);
      svg.append(bar);
    }
  });
  const caption = document.createElement("figcaption");
  caption.textContent = totals;
  return [svg, caption];
}

function refused(counts) {
  return OUTCOMES.filter((o) => o !== "valid").reduce((sum, o) => sum + (counts[o] || 0), 0);
}

async function openAnalytics() {
  view("analytics");
  try {
    const answer = await api("GET", "/analytics/verifications?granularity=day");
    $("tenant-verifications").replaceChildren(...outcomeChart(answer, 30));
    const rows = $("top-key-rows");
    rows.replaceChildren();
    for (const key of answer.top_keys) {
      const row = rows.insertRow();
      cell(row, button(key.id, () => openKey(key.id), "link"));
      cell(row, String(key.total));
      cell(row, String(key.counts.valid));
      cell(row, String(refused(key.counts)));
    }
  } catch (error) {
    show(`The analytics could not be loaded: ${describe(error)}`);
  }
}

let shown = null;

async function openKey(id) {
  view("key");
  try {
    const path = `/keys/${encodeURIComponent(id)}`;
    const [key, usage, audit, verifications, refusals] = await Promise.all([
      api("GET", path),
      api("GET", `${path}/usage?days=30`),
      api("GET", "/audit?limit=100"),
      api("GET", `${path}/verifications?granularity=day`),
      api("GET", `${path}/refusals`),
    ]);
    shown = key;
    $("key-title").textContent = key.name;
    const fields = $("key-fields");
    fields.replaceChildren();
    field(fields, "Key", key.hint);
    field(fields, "Status", badge(key));
    field(fields, "Permissions", key.permissions.join(", "));
    field(fields, "Tier", key.tier);
    field(fields, "Owner", key.owner_id || "—");
    field(fields, "IP allowlist", (key.ip_allowlist || []).join(", ") || "any address");
    field(fields, "Credits", creditsText(key.credits));
    if (Object.keys(key.meta || {}).length) {
      field(fields, "Metadata", Object.assign(document.createElement("code"), { textContent: JSON.stringify(key.meta) }));
    }
    field(fields, "Created", when(key.created_at));
    field(fields, "Last used", when(key.last_used_at));
    field(fields, "Expires", when(key.expires_at));
    if (key.revoked_at) field(fields, "Revoked", when(key.revoked_at));
    $("usage").replaceChildren(...chart(usage, 30));
    $("key-verifications").replaceChildren(...outcomeChart(verifications, 30));
    const refusalRows = $("refusal-rows");
    refusalRows.replaceChildren();
    for (const refusal of refusals.refusals) {
      const row = refusalRows.insertRow();
      cell(row, when(refusal.at));
      cell(row, refusal.code);
      cell(row, refusal.source_ip || "—");
      cell(row, [refusal.method, refusal.path].filter(Boolean).join(" ") || "—");
    }
    $("edit-name").value = key.name;
    const boxes = [...document.querySelectorAll("input[name=edit-permission]")];
    for (const box of boxes) box.checked = key.permissions.includes(box.value);
    // Every name without a checkbox (webhook, the tenant's own) stays editable, so a save keeps it.
    const boxed = boxes.map((box) => box.value);
    $("edit-other-permissions").value = key.permissions.filter((name) => !boxed.includes(name)).join(", ");
    $("edit-tier").value = key.tier;
    $("edit-expires").value = key.expires_at ? key.expires_at.slice(0, 10) : "";
    $("edit-owner").value = key.owner_id || "";
    $("edit-allowlist").value = (key.ip_allowlist || []).join(", ");
    showCredits("edit", key.credits);
    $("edit-form").hidden = key.status === "revoked";
    $("key-toggle").hidden = key.status === "revoked";
    $("key-toggle").textContent = key.enabled === false ? "Enable key" : "Disable key";
    fail("edit-error", null);
    const events = $("key-events");
    events.replaceChildren();
    // Its own events, and those of the key it replaced (the rotation that made it).
    for (const event of audit.events.filter((e) => e.target === key.id || (key.replaces && e.target === key.replaces))) {
      const item = document.createElement("li");
      const whose = event.target === key.id ? "" : " (of the key it replaced)";
      item.textContent = `${when(event.at)}: ${event.action} by ${event.actor}${whose}`;
      events.append(item);
    }
    if (!events.children.length) events.append(Object.assign(document.createElement("li"), { textContent: "None." }));
  } catch (error) {
    if (error.status !== 401) show(describe(error));
  }
}

function isoDay(date) {
  return date ? new Date(`${date}T23:59:59Z`).toISOString().replace(".000Z", "Z") : undefined;
}

// The ticked boxes, then the names typed beside them (comma- or space-separated).
function chosenPermissions(boxName, textId) {
  const ticked = [...document.querySelectorAll(`input[name=${boxName}]:checked`)].map((box) => box.value);
  return [...ticked, ...$(textId).value.split(/[\s,]+/).filter(Boolean)];
}

async function editKey(event) {
  event.preventDefault();
  const permissions = chosenPermissions("edit-permission", "edit-other-permissions");
  const body = { name: $("edit-name").value.trim(), permissions, tier: $("edit-tier").value };
  const expires = isoDay($("edit-expires").value);
  if (expires && expires.slice(0, 10) !== (shown.expires_at || "").slice(0, 10)) body.expires_at = expires;
  const owner = $("edit-owner").value.trim();
  if (owner !== (shown.owner_id || "")) body.owner_id = owner || null;
  const allowlist = $("edit-allowlist").value.split(/[\s,]+/).filter(Boolean);
  if (allowlist.join(",") !== (shown.ip_allowlist || []).join(",")) body.ip_allowlist = allowlist;
  // Sent only when changed: sending them sets the balance anew (its refill period starts then).
  const credits = chosenCredits("edit");
  if (JSON.stringify(credits) !== JSON.stringify(shownCredits(shown.credits))) body.credits = credits;
  try {
    await api("PATCH", `/keys/${encodeURIComponent(shown.id)}`, body);
    await openKey(shown.id);
    show("Saved.");
  } catch (error) {
    fail("edit-error", error);
  }
}

// Disabling is reversible, so it asks no confirmation: the button turns it back on.
async function toggleKey() {
  const enabled = shown.enabled === false;
  try {
    await api("PATCH", `/keys/${encodeURIComponent(shown.id)}`, { enabled });
    await openKey(shown.id);
    show(enabled ? "Enabled: the key works again within seconds." : "Disabled: the key is refused within seconds, until enabled again.");
  } catch (error) {
    fail("edit-error", error);
  }
}

// One confirmation dialog for the actions that cannot be undone (or that show a key once).
let confirmed = null;

function confirmAction(title, text, action, withGrace = false, label = "Confirm") {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-grace").hidden = !withGrace;
  $("confirm-grace-label").hidden = !withGrace;
  $("confirm-grace").value = "0";
  $("confirm-submit").textContent = label;
  fail("confirm-error", null);
  confirmed = action;
  $("confirm-dialog").showModal();
}

async function runConfirmed(event) {
  event.preventDefault();
  try {
    await confirmed(Number($("confirm-grace").value));
    $("confirm-dialog").close();
  } catch (error) {
    fail("confirm-error", error);
  }
}

async function openDatasources() {
  view("datasources");
  try {
    const page = await api("GET", "/datasources?limit=100");
    const rows = $("datasource-rows");
    rows.replaceChildren();
    for (const source of page.datasources) {
      const row = document.createElement("tr");
      row.dataset.id = source.id;
      cell(row, source.name);
      cell(row, source.key_id).className = "mono";
      cell(row, when(source.created_at));
      const latest = cell(row, button("Show", () => showRecords(source, latest), "secondary records"));
      const actions = cell(row, "");
      actions.append(
        button("Regenerate key", () => confirmAction(
          `Regenerate the ingest key of ${source.name}?`,
          "A new ingest key is made and shown once; the current one stops when the grace period ends.",
          async (grace) => {
            const issued = await api("POST", `/datasources/${encodeURIComponent(source.id)}/regenerate-key`,
              { grace_period_seconds: grace });
            showSecret(issued, grace > 0, openDatasources);
          }, true, "Regenerate"), "secondary regenerate"),
        button("Delete", () => confirmAction(
          `Delete ${source.name}?`,
          "Deleting is immediate and irreversible: its ingest keys are revoked and its records deleted.",
          async () => {
            await api("DELETE", `/datasources/${encodeURIComponent(source.id)}`);
            await openDatasources();
          }, false, "Delete"), "danger delete"),
      );
      rows.append(row);
    }
    if (!rows.children.length) {
      const row = document.createElement("tr");
      cell(row, "No datasources yet.").colSpan = 5;
      rows.append(row);
    }
  } catch (error) {
    if (error.status !== 401) show(describe(error));
  }
}

async function showRecords(source, where) {
  try {
    const page = await api("GET", `/datasources/${encodeURIComponent(source.id)}/records?limit=5`);
    const list = document.createElement("ul");
    list.className = "events";
    for (const record of page.records) {
      list.append(Object.assign(document.createElement("li"), { textContent: `${when(record.received_at)}: ${record.id}` }));
    }
    if (!page.records.length) list.append(Object.assign(document.createElement("li"), { textContent: "No records yet." }));
    where.replaceChildren(list);
  } catch (error) {
    if (error.status !== 401) show(describe(error));
  }
}

async function createDatasource(event) {
  event.preventDefault();
  try {
    const issued = await api("POST", "/datasources", { name: $("datasource-name").value.trim() });
    $("datasource-form").reset();
    fail("datasource-error", null);
    showSecret(issued, false, openDatasources);
  } catch (error) {
    fail("datasource-error", error);
  }
}

let auditCursor = null;

async function openAudit(append = false) {
  view("audit");
  const params = new URLSearchParams({ limit: "25" });
  if (append && auditCursor) params.set("cursor", auditCursor);
  try {
    const page = await api("GET", `/audit?${params}`);
    const rows = $("audit-rows");
    if (!append) rows.replaceChildren();
    for (const event of page.events) {
      const row = document.createElement("tr");
      cell(row, when(event.at));
      cell(row, event.actor).className = "mono";
      cell(row, event.action);
      cell(row, event.target).className = "mono";
      rows.append(row);
    }
    auditCursor = page.next_cursor;
    $("audit-next").hidden = !auditCursor;
  } catch (error) {
    if (error.status !== 401) show(describe(error));
  }
}

// A key's credits as a person reads them.
function creditsText(credits) {
  if (!credits) return "unlimited";
  let text = `${credits.remaining.toLocaleString()} left`;
  if (credits.refill) {
    text += `; refilled to ${credits.refill.amount.toLocaleString()} every ${credits.refill.interval} (next ${when(credits.refills_at)})`;
  }
  if (credits.low_threshold) text += `; warns at ${credits.low_threshold.toLocaleString()}`;
  return text;
}

// What a form's credit fields say, in the shape the API takes: null when "Credits left" is empty.
function chosenCredits(prefix) {
  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const remaining = number(`${prefix}-credits`);
  if (remaining === null) return null;
  const interval = $(`${prefix}-refill-interval`).value;
  const refill = interval ? { amount: number(`${prefix}-refill-amount`), interval } : null;
  return { remaining, refill, low_threshold: number(`${prefix}-low-threshold`) };
}

// The key's credits as the form would send them back unchanged.
function shownCredits(credits) {
  if (!credits) return null;
  return { remaining: credits.remaining, refill: credits.refill, low_threshold: credits.low_threshold };
}

function showCredits(prefix, credits) {
  $(`${prefix}-credits`).value = credits ? credits.remaining : "";
  $(`${prefix}-refill-amount`).value = credits && credits.refill ? credits.refill.amount : "";
  $(`${prefix}-refill-interval`).value = credits && credits.refill ? credits.refill.interval : "";
  $(`${prefix}-low-threshold`).value = credits && credits.low_threshold ? credits.low_threshold : "";
}

async function createKey(event) {
  event.preventDefault();
  const permissions = chosenPermissions("permission", "create-other-permissions");
  const body = { name: $("create-name").value.trim(), permissions, tier: $("create-tier").value };
  const expires = isoDay($("create-expires").value);
  if (expires) body.expires_at = expires;
  const owner = $("create-owner").value.trim();
  if (owner) body.owner_id = owner;
  const credits = chosenCredits("create");
  if (credits) body.credits = credits;
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

function openRotate(key) {
  confirmAction(
    `Rotate ${key.name}?`,
    "A new key is made and shown once; the old one keeps working for the time chosen here.",
    async (grace) => {
      const issued = await api("POST", `/keys/${encodeURIComponent(key.id)}/rotate`, { grace_period_seconds: grace });
      showSecret(issued, grace > 0);
    },
    true,
    "Rotate",
  );
}

function openRevoke(key) {
  confirmAction(
    `Revoke ${key.name}?`,
    "Revoking is immediate and irreversible: every request with this key is refused from now on.",
    async () => {
      await api("DELETE", `/keys/${encodeURIComponent(key.id)}`);
      await loadKeys();
    },
    false,
    "Revoke",
  );
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
  for (const tab of document.querySelectorAll("#tabs button")) {
    const open = { keys: openKeys, datasources: openDatasources, analytics: openAnalytics, audit: () => openAudit() }[
      tab.dataset.view
    ];
    tab.addEventListener("click", () => {
      show("");
      open();
    });
  }
  $("key-back").addEventListener("click", openKeys);
  $("edit-form").addEventListener("submit", editKey);
  $("key-toggle").addEventListener("click", toggleKey);
  $("confirm-cancel").addEventListener("click", () => $("confirm-dialog").close());
  $("confirm-form").addEventListener("submit", runConfirmed);
  $("datasource-form").addEventListener("submit", createDatasource);
  $("audit-next").addEventListener("click", () => openAudit(true));

  const handed = handedOver();
  if (handed) sessionStorage.setItem(SESSION, JSON.stringify(handed));
  const current = session();
  if (current && Date.parse(current.expires_at) > Date.now()) {
    keep(current);
    openKeys();
  } else {
    signedOut(current ? "Your session has expired: sign in again." : "");
  }
}

start();
