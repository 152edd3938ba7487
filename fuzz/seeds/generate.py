#!/usr/bin/env python3
"""Writes the fuzz targets' hand-made seeds into fuzz/corpus/<target>/seed-*: realistic inputs (the
authorizer's fixture events and their headers, keys of every profile, ingest bodies as the tests
send them) and the edges the parsers check. `infra/fuzz` and the long runs start from these plus
what earlier runs kept (added by `infra/fuzz --merge`). Run it again after changing it:
    python3 fuzz/seeds/generate.py
"""
import json, os, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "functions", "authorizer", "tests", "fixtures")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def checksummed(prefix, random_hex):
    body = f"{prefix}_{random_hex}"
    return body + "%08x" % zlib.crc32(body.encode())


HEX32 = "3f8da4f058e8992f91c42ccfd00b31e3"
FIXTURE_KEYS = json.load(open(os.path.join(FIXTURES, "keys.json")))
EVENTS = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".json") and f != "keys.json")

# --- key_parse: CANDIDATE, or SPEC\nCANDIDATE ------------------------------------------------
keys = {
    "ctw": "ctw_" + HEX32,
    "orch": "orch_" + HEX32 + "a017156f",
    "latchkey": FIXTURE_KEYS["valid"],
    "custom-acme-crc": "custom:acme:40:crc32\n" + checksummed("acme", HEX32),
    "custom-x-32": "custom:x:32\nx_" + HEX32,
    "custom-odd-33": "custom:odd:33\nodd_" + HEX32 + "a",
    "custom-long": "custom:abcdefghijklmnop:128:crc32\n" + checksummed("abcdefghijklmnop", HEX32 * 3 + "0" * 24),
    "spec-ctw": "ctw\nctw_" + HEX32,
    "spec-orch": "orch\norch_" + HEX32 + "a017156f",
    "spec-latchkey": "latchkey\n" + FIXTURE_KEYS["revoked"],
    "upper-body": "ctw_" + HEX32.upper(),
    "upper-prefix": "CTW_" + HEX32,
    "dash": "ctw-" + HEX32,
    "short": "ctw_" + HEX32[:-1],
    "typo-checksum": FIXTURE_KEYS["valid"][:5] + "0" + FIXTURE_KEYS["valid"][6:],
    "multibyte": "ctw_" + HEX32[:-2] + "\u00e9",
    "spec-bad-prefix": "custom:Acme:40\nAcme_" + HEX32 + "00000000",
    "spec-short-body": "custom:acme:39:crc32\nacme_" + HEX32,
    "spec-long-body": "custom:acme:200\nacme_" + HEX32,
    "spec-md5": "custom:acme:40:md5\nacme_" + HEX32,
    "spec-unknown": "stripe\nsk_" + HEX32,
    "spec-extra": "custom:acme:40:crc32:x\nacme_" + HEX32,
}
for name, value in FIXTURE_KEYS.items():
    keys["fixture-" + name] = value
for name, value in keys.items():
    write("key_parse", name, value)

# --- extract_credential: one `name: value` a line ---------------------------------------------
def header_lines(headers):
    return "\n".join(f"{name}:{' ' if value else ''}{value}" for name, value in headers.items())


for event in EVENTS:
    data = json.load(open(os.path.join(FIXTURES, event)))
    if data.get("headers"):
        write("extract_credential", event[:-5], header_lines(data["headers"]))
KEY = "ctw_" + HEX32
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
for name, lines in {
    "x-api-key": [f"x-api-key: {KEY}"],
    "bearer": [f"Authorization: Bearer {KEY}"],
    "bare": [f"authorization: {KEY}"],
    "case-space": [f"X-API-KEY:   {KEY}\t", f"AUTHORIZATION:  bEaReR   {KEY} "],
    "jwt": [f"Authorization: Bearer {JWT}"],
    "two-segments": ["Authorization: Bearer a.b"],
    "bearer-glued": [f"Authorization: Bearer{KEY}"],
    "bearer-empty": ["Authorization: Bearer", "x-api-key:  "],
    "empty-then-key": ["x-api-key:", f"authorization: {KEY}"],
    "agree": [f"x-api-key: {KEY}", f"Authorization: Bearer {KEY}"],
    "disagree": [f"x-api-key: {KEY}", "Authorization: Bearer ctw_" + "0" * 32],
    "key-vs-jwt": [f"x-api-key: {JWT}", f"Authorization: Bearer {JWT}"],
    "repeated": [f"x-api-key: {KEY}", "x-api-key: other"],
    "none": ["accept: */*", "host: example.com"],
}.items():
    write("extract_credential", name, "\n".join(lines))

# --- authorizer_event: the raw event bytes ----------------------------------------------------
for event in EVENTS:
    with open(os.path.join(FIXTURES, event), "rb") as f:
        write("authorizer_event", event[:-5], f.read())
for name, raw in {
    "both-maps": '{"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:123:abc/prod/GET/whoami",'
    '"headers":{"X-Api-Key":"k1","Accept":"*/*"},"multiValueHeaders":{"X-Api-Key":["k1","k2"],"Accept":["*/*"]},'
    '"queryStringParameters":null,"requestContext":{"requestId":"r-1","identity":{"sourceIp":"1.2.3.4"}}}',
    "null-maps": '{"methodArn":"arn","headers":null,"multiValueHeaders":null}',
    "escaped": '{"methodArn":"arn\\/x","headers":{"x-api-\\u006bey":"a\\u0062c","x":null,"o":{"a":[1]}},'
    '"requestContext":{"requestId":"r\\"1"}}',
    "multi-nulls": '{"methodArn":"arn","multiValueHeaders":{"x-api-key":[null,"k",null],"a":null},"headers":{"x-api-key":"h"}}',
    "repeated-names": '{"methodArn":"arn","headers":{"x-api-key":"a","X-Api-Key":"b","x-api-key":"c"}}',
    "bad-value": '{"methodArn":"arn","headers":{"x-api-key":1}}',
    "no-arn": '{"headers":{}}',
    # Accepted although not an object (serde reads a struct from an array by position): kept so
    # the target goes on checking that it does not panic.
    "array-form": '["arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/whoami",'
    '{"x-api-key":"lk_3f8da4f058e8992f91c42ccfd00b31e3a017156f"},null,["r-1"]]',
    "array-form-minimal": '[","]',
    "skipped-not-utf8": b'{"methodArn":"a","x":"\xff\xfe"}',
}.items():
    write("authorizer_event", name, raw)

# --- ingest_body: [Idempotency-Key: KEY\n]BODY; `@PAD` grows to just under a record's limit ----
records = lambda n: json.dumps({"records": [{"n": i} for i in range(n)]}, separators=(",", ":"))
for name, body in {
    "one": '{"temperature": 21.5}',
    "batch-mixed": 'Idempotency-Key: k1\n{"records": [{"a": 1}, 5, {"id": "r-2", "b": 2}, {"id": 9}, {"id": ""}]}',
    "batch-ids": '{"records": [{"n": 1}, {"n": 2}, {"id": "fixed", "n": 3}]}',
    "records-not-list": '{"records": 3}',
    "records-and-more": '{"records": [{"a": 1}], "b": 2}',
    "empty-batch": '{"records": []}',
    "not-object": '[{"a": 1}]',
    "text": '"text"',
    "escaped-id": '{"id": "dev\\u002d4", "t": "\\u00e9"}',
    "key-space": 'Idempotency-Key: has space\n{"a": 1}',
    "max-records": "Idempotency-Key: batch-7\n" + records(500),
    "too-many": records(501),
    "near-limit": '{"records": [{"a": 1}, {"blob": "@PAD"}]}',
    "over-limit": '{"records": [{"id": "big"}, {"blob": "@PAD", "more": "0123456789abcdef"}]}',
    "one-over-limit": '{"blob": "@PAD", "more": "0123456789abcdef0123456789abcdef"}',
}.items():
    write("ingest_body", name, body)
