"""Schemathesis hooks for infra/schemathesis (loaded through SCHEMATHESIS_HOOKS).

Two things, each applied just before a request is sent:

1. The key the run authenticates with is kept alive. The API lists its keys, and the stateful
   phase follows `GET /keys` to `DELETE`, `PATCH` and `rotate` of the ids it finds: with the
   fuzzing key among them, the run would revoke itself and every later answer would be a 401.
   A path `id` listed in LATCHKEY_FUZZ_PROTECTED (comma-separated) is swapped for
   LATCHKEY_FUZZ_STAND_IN, a key created for the purpose that the run may patch, rotate and
   revoke. Not for an id that names no key: its 404 would follow the POST /keys that began the
   scenario, and `ensure_resource_availability` (ST302) would read it as a created key not found.

2. Positive cases are brought within the rules openapi.yaml states in words but JSON Schema
   cannot express, so that `positive_data_acceptance` judges the rest of the request:
   - `cursor` is opaque (the `next_cursor` of the same listing): a generated one that the API
     could not have issued is replaced by the encoding of a well-formed id of that listing
     (any position is a valid place to continue from);
   - `expires_at` must be in the future: a past one is moved to a future time;
   - an imported `key` may not start with the deployment's prefix and `_` (`lk_`: a mistyped
     key of its own): one that does gets another first character;
   - an analytics window's `since` must be before its `until` and at most 90 days (31 hourly)
     before it: a `since` outside that is moved to an hour before `until`.
   Negative cases are never touched.

3. The string format `ip-network` of openapi.yaml (an IP allowlist's entries) is generated as
   what it names: IPv4 and IPv6 networks in CIDR notation, and bare addresses.
"""

import base64
import hashlib
import ipaddress
import os
import re
from collections.abc import MutableMapping
from datetime import datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

def _networks(version: int, longest: int) -> st.SearchStrategy:
    return st.builds(
        lambda address, prefix: str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)),
        st.ip_addresses(v=version),
        st.integers(0, longest),
    )


schemathesis.openapi.format(
    "ip-network", st.one_of(_networks(4, 32), _networks(6, 128), st.ip_addresses().map(str))
)

PROTECTED = {i for i in os.environ.get("LATCHKEY_FUZZ_PROTECTED", "").split(",") if i}

# What a listing's cursor encodes (shared/src/store: base64url, no padding, of the last id).
CURSOR_IDS = {
    "/keys": re.compile(r"^key_[0-9a-f]{32}$"),
    "/audit": re.compile(r"^evt_[0-9a-f]{32}$"),
    "/datasources": re.compile(r"^ds_[0-9a-f]{32}$"),
    "/datasources/{id}/records": re.compile(r"^[0-9a-f]{36}$"),
}
CURSOR_PREFIX = {"/keys": "key_", "/audit": "evt_", "/datasources": "ds_", "/datasources/{id}/records": ""}
STAND_IN = os.environ.get("LATCHKEY_FUZZ_STAND_IN", "")
if PROTECTED and not STAND_IN:
    raise RuntimeError("LATCHKEY_FUZZ_PROTECTED needs LATCHKEY_FUZZ_STAND_IN: the key id to use instead")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _decodes(cursor: str, pattern: re.Pattern) -> bool:
    # As strict as the API's decoder: the canonical unpadded base64url of the id, nothing else.
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text = raw.decode()
    except ValueError:
        return False
    canonical = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return canonical == cursor and bool(pattern.match(text))


def _fix_cursor(path: str, query) -> None:
    pattern = CURSOR_IDS.get(path)
    cursor = query.get("cursor") if isinstance(query, MutableMapping) else None
    if pattern is None or not isinstance(cursor, str) or _decodes(cursor, pattern):
        return
    length = 36 if path.endswith("/records") else 32
    text = CURSOR_PREFIX[path] + _digest(cursor, length)
    query["cursor"] = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _fix_expiry(body: MutableMapping) -> None:
    at = body.get("expires_at")
    if not isinstance(at, str):
        return
    try:
        parsed = datetime.fromisoformat(at.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return
    now = datetime.now(timezone.utc)
    if parsed.tzinfo is not None and parsed > now + timedelta(minutes=1):
        return
    days = 1 + int(_digest(at, 8), 16) % 3650
    body["expires_at"] = (now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fix_imported_key(body: MutableMapping) -> None:
    key = body.get("key")
    if isinstance(key, str) and key.startswith(IMPORT_REFUSED_PREFIX):
        body["key"] = "x" + key[1:]


# The default profile's prefix, which the local API the run starts uses.
IMPORT_REFUSED_PREFIX = "lk_"

WINDOWED = ("/keys/{id}/verifications", "/analytics/verifications")


def _time(text):
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _fix_window(query) -> None:
    if not isinstance(query, MutableMapping) or "since" not in query:
        return
    until = _time(query["until"]) if "until" in query else datetime.now(timezone.utc)
    since = _time(query["since"])
    if until is None or since is None:
        return
    widest = timedelta(days=31 if query.get("granularity") == "hour" else 90)
    if since < until and until - since <= widest:
        return
    try:
        query["since"] = (until - timedelta(hours=1)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        del query["since"]


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and params.get("id") in PROTECTED:
        params["id"] = STAND_IN
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    _fix_cursor(case.path, case.query)
    if case.path in WINDOWED:
        _fix_window(case.query)
    body = case.body
    if isinstance(body, MutableMapping):
        if case.path in ("/keys", "/keys/{id}", "/keys/import"):
            _fix_expiry(body)
        if case.path == "/keys/import":
            _fix_imported_key(body)
