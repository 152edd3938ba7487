"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium (WebDriver),
against the local API, which this script starts (and restarts with other settings where a flow
needs them). Flows: sign in; create a key and read it from the dialog; use it; reload and find the
secret gone from the page, storage and network log; rotate with a grace period (both keys work,
and after the grace only the new one); revoke behind the confirmation (the key stops); a session
renewed before it expires; a provider's identity provider hands the page a session in the URL's
fragment; an expired session, locally and by the server, leads back to sign-in;
no console errors; screenshots, desktop and 360 px wide.

usage: test.py LOCAL_API_BINARY SCREENSHOT_DIR
"""

import base64
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

binary, shots = sys.argv[1], pathlib.Path(sys.argv[2])
shots.mkdir(parents=True, exist_ok=True)


class LocalApi:
    """The local API on one port and one data directory, so a restart keeps the keys, the
    sessions' secret and the page's origin (the browser's session storage)."""

    def __init__(self, work):
        self.work = pathlib.Path(work)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.work / "api.log"
        self.process = None

    def start(self, **settings):
        env = {**os.environ, "LATCHKEY_ADDR": f"127.0.0.1:{self.port}", "LATCHKEY_DATA_DIR": str(self.work / "data"),
               "LATCHKEY_ADMIN_KEY_FILE": str(self.work / "admin-key"), **settings}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError(f"the local API exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/dashboard").close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the local API did not start in 30 s")

    def restart(self, **settings):
        self.stop()
        self.start(**settings)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """A provider's identity provider: an ES256 key pair made here, its JWKS served on a loopback
    port, and sessions signed with it."""

    issuer, audience, kid = "https://id.provider.test/", "provider-dashboard", "provider-key-1"

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.key.public_key().public_numbers()
        jwks = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                                     "x": b64url(public.x.to_bytes(32, "big")),
                                     "y": b64url(public.y.to_bytes(32, "big"))}]}).encode()

        class Jwks(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(jwks)))
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    def session(self, **claims):
        claims = {"iss": self.issuer, "aud": self.audience, "exp": int(time.time()) + 600, **claims}
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self):
        self.server.shutdown()


work = tempfile.TemporaryDirectory()
local_api = LocalApi(work.name)
local_api.start()
base = local_api.base
admin_key = (local_api.work / "admin-key").read_text().strip()


def whoami(key):
    request = urllib.request.Request(f"{base}/whoami", headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def admin_get(path):
    request = urllib.request.Request(f"{base}{path}", headers={"x-api-key": admin_key})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def ingest(key, body):
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/ingest", data=data, method="POST",
                                     headers={"x-api-key": key, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def browser(profile):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", f"--user-data-dir={profile}", "--window-size=1280,900"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def console_errors(driver, allowed=()):
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return [message for message in errors if not any(text in message for text in allowed)]


def wait(driver, poll=0.5):
    # The table is rebuilt after each change: an element read mid-rebuild is simply read again.
    return WebDriverWait(driver, 10, poll_frequency=poll, ignored_exceptions=(StaleElementReferenceException,))


def shot(driver, name):
    path = shots / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def visible(driver, element_id):
    return wait(driver).until(seen.visibility_of_element_located((By.ID, element_id)))


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#key-rows tr[data-id]")


def row_named(driver, name, poll=0.5):
    return wait(driver, poll).until(lambda d: next((r for r in rows(d) if r.find_element(By.TAG_NAME, "td").text == name), None))


def sign_in(driver):
    field = visible(driver, "admin-key")
    field.send_keys(admin_key)
    driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
    visible(driver, "keys")
    wait(driver).until(lambda d: len(rows(d)) >= 1)


def active_row(driver, name):
    return wait(driver).until(lambda d: next((r for r in rows(d) if r.find_element(By.TAG_NAME, "td").text == name
                                              and r.find_element(By.CSS_SELECTOR, ".badge").text == "active"), None))


def read_secret(driver):
    value = visible(driver, "secret-value").get_attribute("value")
    assert value.startswith("lk_"), value
    return value


def close_secret(driver):
    driver.find_element(By.ID, "secret-done").click()
    visible(driver, "secret-close").click()
    wait(driver).until(lambda d: not d.find_element(By.ID, "secret-dialog").is_displayed())
    assert driver.find_element(By.ID, "secret-value").get_attribute("value") == ""


with tempfile.TemporaryDirectory() as profile:
    driver = browser(profile)
    try:
        # Sign in: `/` leads to the dashboard, the key goes to POST /sessions and nowhere else.
        driver.get(f"{base}/")
        assert driver.current_url.endswith("/dashboard"), driver.current_url
        visible(driver, "sign-in")
        shot(driver, "sign-in-desktop")
        sign_in(driver)
        assert driver.find_element(By.ID, "admin-key").get_attribute("value") == ""
        assert admin_key not in json.dumps(driver.execute_script("return {...sessionStorage, ...localStorage}"))
        shot(driver, "keys-desktop")

        # Create a key: shown once in the dialog, and it works.
        driver.find_element(By.ID, "create-open").click()
        visible(driver, "create-name").send_keys("billing worker")
        driver.find_element(By.CSS_SELECTOR, "input[name=permission][value=write]").click()
        driver.find_element(By.ID, "create-other-permissions").send_keys("documents.read, billing:*")
        Select(driver.find_element(By.ID, "create-tier")).select_by_value("starter")
        shot(driver, "create-desktop")
        driver.find_element(By.ID, "create-submit").click()
        secret = read_secret(driver)
        assert "won't be shown again" in driver.find_element(By.ID, "secret-dialog").text
        shot(driver, "secret-desktop")
        status, me = whoami(secret)
        assert (status, me.get("name"), me.get("tier")) == (200, "billing worker", "starter"), me
        assert me["permissions"] == ["read", "write", "billing:*", "documents.read"], me
        close_secret(driver)
        row_named(driver, "billing worker")

        # After a reload the secret is nowhere: page, DOM, storage, network log.
        driver.get_log("performance")
        started = time.monotonic()
        driver.refresh()
        # Looked for every 10 ms, or the measurement is the polling's 500 ms steps.
        row_named(driver, "billing worker", poll=0.01)
        interactive_ms = (time.monotonic() - started) * 1000
        network = json.dumps(driver.get_log("performance"))
        storage = json.dumps(driver.execute_script("return {...sessionStorage, ...localStorage}"))
        for place, text in [("page", driver.page_source), ("storage", storage), ("network log", network)]:
            assert secret not in text, f"the secret is in the {place} after a reload"
        transferred = driver.execute_script(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
            ".filter(e => !e.name.includes('/keys') && !e.name.includes('/whoami')).reduce((n, e) => n + e.transferSize, 0)")

        # Rotate with a grace period: the new key is shown once, and both work.
        row_named(driver, "billing worker").find_element(By.CSS_SELECTOR, "button.rotate").click()
        Select(visible(driver, "confirm-grace")).select_by_value("900")
        driver.find_element(By.ID, "confirm-submit").click()
        rotated = read_secret(driver)
        assert "works until" in driver.find_element(By.ID, "secret-replaced").text
        close_secret(driver)
        assert whoami(rotated)[0] == 200 and whoami(secret)[0] == 200
        wait(driver).until(lambda d: len([r for r in rows(d) if "billing worker" in r.text]) == 2)
        badges = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows(driver) if "billing worker" in r.text]
        assert sorted(badges) == ["active", "expires soon"], badges

        # Revoke, behind the confirmation: the old key stops at once.
        old = next(r for r in rows(driver) if "billing worker" in r.text and "expires soon" in r.text)
        old.find_element(By.CSS_SELECTOR, "button.revoke").click()
        dialog = visible(driver, "confirm-dialog")
        assert "immediate and irreversible" in dialog.text
        shot(driver, "revoke-desktop")
        driver.find_element(By.ID, "confirm-submit").click()
        wait(driver).until(lambda d: "revoked" in [b.text for b in d.find_elements(By.CSS_SELECTOR, ".badge")])
        status, body = whoami(secret)
        assert (status, body["error"]["code"]) == (401, "INVALID_API_KEY"), body
        assert whoami(rotated)[0] == 200
        Select(driver.find_element(By.ID, "status-filter")).select_by_value("revoked")
        wait(driver).until(lambda d: len(rows(d)) == 1)
        errors = console_errors(driver)
        assert not errors, errors

        # A key's page: its record, a usage chart of 30 days, its audit events; edit it.
        Select(driver.find_element(By.ID, "status-filter")).select_by_value("")
        active_row(driver, "billing worker").find_element(By.CSS_SELECTOR, "button.name").click()
        visible(driver, "key")
        bars = wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#usage svg.chart rect"))
        assert len(bars) == 30, len(bars)
        # The figure's caption alone (the figure's text would begin with whatever else it holds).
        caption = driver.find_element(By.CSS_SELECTOR, "#usage figcaption").text
        # The key was used above (whoami): the local API counts what it lets through.
        assert "requests in the last 30 days" in caption and not caption.startswith("0 "), caption
        tallest = max(int(bar.get_attribute("height")) for bar in bars)
        assert tallest > 1, f"no bar for today's requests ({caption})"
        wait(driver).until(lambda d: "key.rotate" in d.find_element(By.ID, "key-events").text)
        shot(driver, "key-desktop")
        name = driver.find_element(By.ID, "edit-name")
        name.clear()
        name.send_keys("billing worker v2")
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: d.find_element(By.ID, "key-title").text == "billing worker v2")
        wait(driver).until(lambda d: "key.update" in d.find_element(By.ID, "key-events").text)
        renamed = whoami(rotated)[1]
        # The names without a checkbox were in the edit form's text field, so the save kept them.
        assert renamed["name"] == "billing worker v2", renamed
        assert renamed["permissions"] == ["read", "write", "billing:*", "documents.read"], renamed

        # Give it an owner (the API then lists it under that owner), disable it (refused as
        # such once the authorizer's 5 s cache has passed), enable it again.
        driver.find_element(By.ID, "edit-owner").send_keys("cus_42")
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: "cus_42" in d.find_element(By.ID, "key-fields").text)
        assert [k["name"] for k in admin_get("/keys?owner_id=cus_42")["keys"]] == ["billing worker v2"]
        # An IP allowlist without this machine refuses the key (the local API's cache is cleared
        # by its own changes); emptied, the key works again.
        driver.find_element(By.ID, "edit-allowlist").send_keys("10.0.0.0/8, 2001:db8::/32")
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: "10.0.0.0/8, 2001:db8::/32" in d.find_element(By.ID, "key-fields").text)
        status, body = whoami(rotated)
        assert (status, body["error"]["code"]) == (401, "IP_NOT_ALLOWED"), body
        driver.find_element(By.ID, "edit-allowlist").clear()
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: "any address" in d.find_element(By.ID, "key-fields").text)
        assert whoami(rotated)[0] == 200
        # Usage credits: set in the form, shown on the page and by the API (/whoami spends none);
        # emptied, the key is unlimited again.
        assert "unlimited" in driver.find_element(By.ID, "key-fields").text
        driver.find_element(By.ID, "edit-credits").send_keys("2")
        driver.find_element(By.ID, "edit-refill-amount").send_keys("10")
        Select(driver.find_element(By.ID, "edit-refill-interval")).select_by_value("day")
        driver.find_element(By.ID, "edit-low-threshold").send_keys("1")
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: "2 left; refilled to 10 every day" in d.find_element(By.ID, "key-fields").text)
        assert "warns at 1" in driver.find_element(By.ID, "key-fields").text
        shot(driver, "key-credits-desktop")
        credits = whoami(rotated)[1]["credits"]
        assert (credits["remaining"], credits["refill"], credits["low_threshold"]) == (2, {"amount": 10, "interval": "day"}, 1), credits
        assert driver.find_element(By.ID, "edit-credits").get_attribute("value") == "2"
        driver.find_element(By.ID, "edit-credits").clear()
        driver.find_element(By.ID, "edit-submit").click()
        wait(driver).until(lambda d: "unlimited" in d.find_element(By.ID, "key-fields").text)
        assert whoami(rotated)[1]["credits"] is None
        driver.find_element(By.ID, "key-toggle").click()
        wait(driver).until(lambda d: d.find_element(By.ID, "key-toggle").text == "Enable key")
        assert "disabled" in driver.find_element(By.ID, "key-fields").text
        shot(driver, "key-disabled-desktop")
        time.sleep(5.5)
        status, body = whoami(rotated)
        assert (status, body["error"]["code"]) == (401, "DISABLED_API_KEY"), body
        driver.find_element(By.ID, "key-toggle").click()
        wait(driver).until(lambda d: d.find_element(By.ID, "key-toggle").text == "Disable key")
        wait(driver).until(lambda d: "key.enable" in d.find_element(By.ID, "key-events").text)
        assert "key.disable" in driver.find_element(By.ID, "key-events").text
        time.sleep(5.5)
        assert whoami(rotated)[0] == 200
        driver.find_element(By.ID, "key-back").click()
        active_row(driver, "billing worker v2")

        # Datasources: create (its ingest key shown once, and it ingests), the latest records,
        # regenerate the key with a grace period (both work), delete behind a confirmation.
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=datasources]").click()
        visible(driver, "datasources")
        driver.find_element(By.ID, "datasource-name").send_keys("weather station 7")
        driver.find_element(By.ID, "datasource-create").click()
        ingest_key = read_secret(driver)
        close_secret(driver)
        assert ingest(ingest_key, {"records": [{"id": "reading-1", "t": 21.5}]}) == 202
        source = wait(driver).until(lambda d: next(
            (r for r in d.find_elements(By.CSS_SELECTOR, "#datasource-rows tr[data-id]") if "weather station 7" in r.text), None))
        source.find_element(By.CSS_SELECTOR, "button.records").click()
        wait(driver).until(lambda d: "reading-1" in d.find_element(By.ID, "datasource-rows").text)
        shot(driver, "datasources-desktop")
        source = driver.find_element(By.CSS_SELECTOR, "#datasource-rows tr[data-id]")
        source.find_element(By.CSS_SELECTOR, "button.regenerate").click()
        Select(visible(driver, "confirm-grace")).select_by_value("900")
        driver.find_element(By.ID, "confirm-submit").click()
        new_ingest_key = read_secret(driver)
        close_secret(driver)
        assert ingest(new_ingest_key, {"t": 1}) == 202 and ingest(ingest_key, {"t": 2}) == 202
        source = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "#datasource-rows tr[data-id]"))
        source.find_element(By.CSS_SELECTOR, "button.delete").click()
        assert "immediate and irreversible" in visible(driver, "confirm-dialog").text
        driver.find_element(By.ID, "confirm-submit").click()
        wait(driver).until(lambda d: "No datasources yet." in d.find_element(By.ID, "datasource-rows").text)
        assert ingest(new_ingest_key, {"t": 3}) == 401

        # The audit log, newest first.
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=audit]").click()
        wait(driver).until(lambda d: "datasource.delete" in d.find_element(By.ID, "audit-rows").text)
        first = driver.find_element(By.CSS_SELECTOR, "#audit-rows tr").text
        assert "datasource.delete" in first, first
        shot(driver, "audit-desktop")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=keys]").click()
        visible(driver, "keys")
        errors = console_errors(driver)
        assert not errors, errors

        # Narrow: readable at 360 px, nothing wider than the screen but the table's own scroller.
        driver.set_window_size(360, 800)
        Select(driver.find_element(By.ID, "status-filter")).select_by_value("")
        wait(driver).until(lambda d: len(rows(d)) >= 3)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        inner = driver.execute_script("return window.innerWidth")
        widest = driver.execute_script(
            "return [...document.querySelectorAll('body, main, section, .table-wrap, header, body > *')].filter(e => e.getBoundingClientRect().right > innerWidth || e.scrollWidth > innerWidth)"
            ".slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + '/' + e.scrollWidth)")
        assert width <= inner, f"the page is {width} px wide at {inner}: {widest}"
        shot(driver, "keys-narrow")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=audit]").click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audit-rows tr"))
        shot(driver, "audit-narrow")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=keys]").click()
        active_row(driver, "billing worker v2").find_element(By.CSS_SELECTOR, "button.name").click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#usage svg.chart rect"))
        shot(driver, "key-narrow")
        driver.find_element(By.ID, "key-back").click()
        WebDriverWait(driver, 10).until(lambda d: len(rows(d)) >= 3)

        # An expired session leads back to sign-in, not to a broken page; so does a bad token.
        driver.execute_script(
            "sessionStorage.setItem('latchkey.session', JSON.stringify({token: 'x', expires_at: '2000-01-01T00:00:00Z'}))")
        driver.refresh()
        visible(driver, "sign-in")
        notice = driver.find_element(By.ID, "notice").text
        assert "expired" in notice, notice
        driver.execute_script(
            "sessionStorage.setItem('latchkey.session', JSON.stringify({token: 'a.b.c', expires_at: '2999-01-01T00:00:00Z'}))")
        driver.refresh()
        visible(driver, "sign-in")
        shot(driver, "sign-in-narrow")
        # The refused token's 401 is the only error the console may show here.
        errors = console_errors(driver, allowed=["status of 401"])
        assert not errors, errors
        driver.set_window_size(1280, 900)
        sign_in(driver)
        errors = console_errors(driver)
        assert not errors, errors

        # A provider's sign-in hands the page a session in the fragment: a JWT of the provider's
        # identity provider (ES256, verified by its JWKS, which the local API is restarted to
        # read), used, then gone from the address bar and the history. One signed by another key
        # leads to sign-in.
        provider = IdentityProvider()
        local_api.restart(LATCHKEY_JWT_JWKS_URL=provider.jwks_url, LATCHKEY_JWT_ISSUER=provider.issuer,
                          LATCHKEY_JWT_AUDIENCE=provider.audience)
        tenant = whoami(admin_key)[1]["tenant_id"]
        handed = provider.session(sub="customer-42", tenant_id=tenant, permissions=["read", "admin"])
        driver.execute_script("sessionStorage.clear()")
        driver.get("about:blank")
        driver.get(f"{base}/dashboard#session={handed}")
        visible(driver, "keys")
        wait(driver).until(lambda d: len(rows(d)) >= 3)
        assert "#" not in driver.current_url and handed not in driver.current_url, driver.current_url
        assert driver.execute_script("return history.length") >= 1
        shot(driver, "provider-session-desktop")
        errors = console_errors(driver)
        assert not errors, errors

        # Analytics, as the authorizer counted them before the restart (the local API writes its
        # counts as it stops): the tenant's verifications by outcome and its busiest keys; then
        # a key's chart and its latest refusals, with the codes its callers got above.
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=analytics]").click()
        visible(driver, "analytics")
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#top-key-rows tr"))
        assert driver.find_elements(By.CSS_SELECTOR, "#tenant-verifications svg.chart rect.outcome-valid")
        caption = driver.find_element(By.ID, "tenant-verifications").text
        assert re.search(r"\b[1-9]\d* ip not allowed", caption) and re.search(r"\b[1-9]\d* disabled", caption), caption
        shot(driver, "analytics-desktop")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=keys]").click()
        active_row(driver, "billing worker v2").find_element(By.CSS_SELECTOR, "button.name").click()
        visible(driver, "key")
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#refusal-rows tr"))
        refusal_codes = driver.find_element(By.ID, "refusal-rows").text
        assert "IP_NOT_ALLOWED" in refusal_codes and "DISABLED_API_KEY" in refusal_codes, refusal_codes
        assert "GET /whoami" in refusal_codes, refusal_codes
        assert driver.find_elements(By.CSS_SELECTOR, "#key-verifications svg.chart rect.outcome-ip_not_allowed")
        shot(driver, "key-analytics-desktop")
        errors = console_errors(driver)
        assert not errors, errors
        forged = IdentityProvider().session(sub="customer-42", tenant_id=tenant, permissions=["read", "admin"])
        driver.execute_script("sessionStorage.clear()")
        driver.get("about:blank")
        driver.get(f"{base}/dashboard#session={forged}")
        visible(driver, "sign-in")
        errors = console_errors(driver, allowed=["status of 401"])
        assert not errors, errors
        provider.stop()

        # With the keyboard alone: sign in (focus starts in the key field), reach "Create New API
        # Key" with Tab, open it with Enter (focus moves into the dialog), leave it with Escape.
        driver.refresh()
        visible(driver, "sign-in")
        focused = driver.switch_to.active_element
        assert focused.get_attribute("id") == "admin-key", focused.get_attribute("id")
        focused.send_keys(admin_key + Keys.ENTER)
        visible(driver, "keys")
        for _ in range(40):
            ActionChains(driver).send_keys(Keys.TAB).perform()
            if driver.switch_to.active_element.get_attribute("id") == "create-open":
                break
        else:
            raise AssertionError("Tab never reached Create New API Key")
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        visible(driver, "create-dialog")
        assert driver.switch_to.active_element.get_attribute("id") == "create-name"
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()
        wait(driver).until(lambda d: not d.find_element(By.ID, "create-dialog").is_displayed())
        errors = console_errors(driver)
        assert not errors, errors

        # After a grace period only the new key works. The local API is restarted 16 minutes
        # ahead (LATCHKEY_CLOCK_OFFSET_SECONDS): past the 15 minute grace, and past the 15 minute
        # session the page holds, which the server now calls expired before the page renewed it
        # (a laptop asleep through the renewal): the next step is sign-in, saying so.
        active_row(driver, "billing worker v2").find_element(By.CSS_SELECTOR, "button.rotate").click()
        Select(visible(driver, "confirm-grace")).select_by_value("900")
        driver.find_element(By.ID, "confirm-submit").click()
        newest = read_secret(driver)
        close_secret(driver)
        assert whoami(newest)[0] == 200 and whoami(rotated)[0] == 200
        local_api.restart(LATCHKEY_CLOCK_OFFSET_SECONDS="960")
        status, body = whoami(rotated)
        assert (status, body["error"]["code"]) == (401, "EXPIRED_API_KEY"), body
        assert whoami(newest)[0] == 200
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=audit]").click()
        visible(driver, "sign-in")
        assert "expired" in driver.find_element(By.ID, "notice").text
        # Signed out, the page offers sign-in only: no tabs to pages it cannot show.
        assert not driver.find_element(By.ID, "tabs").is_displayed()
        shot(driver, "session-expired-desktop")
        errors = console_errors(driver, allowed=["status of 401"])
        assert not errors, errors
        sign_in(driver)

        # A session is renewed before it expires: with 60 s sessions (the shortest allowed) the
        # page asks for a new one after 30 s, and goes on working with it.
        local_api.restart(LATCHKEY_SESSION_TTL_SECONDS="60")
        driver.find_element(By.ID, "sign-out").click()
        sign_in(driver)
        held = lambda d: json.loads(d.execute_script("return sessionStorage.getItem('latchkey.session')"))
        first = held(driver)
        assert 55 <= (time.mktime(time.strptime(first["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())) <= 60, first
        renewed = WebDriverWait(driver, 45).until(lambda d: held(d)["token"] != first["token"] and held(d))
        assert renewed["expires_at"] > first["expires_at"], (first, renewed)
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=audit]").click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audit-rows tr"))
        visible(driver, "audit")
        errors = console_errors(driver)
        assert not errors, errors

        print(f"dashboard: first load {transferred} B transferred (HTML, script, style), "
              f"keys page interactive {interactive_ms:.0f} ms after a reload; screenshots in {shots}")
    finally:
        driver.quit()
        local_api.stop()
