// One real session of a client generated from openapi.yaml by well-known generators: the types
// from openapi-typescript, the calls from openapi-fetch. infra/openapi/client compiles it with
// `tsc --strict` against the types it generated a moment before, so a document that no longer
// says what this code reads (a renamed field, a changed type, a route gone) fails to compile;
// then it runs against the local API, so a document that compiles but lies fails here.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`generated client: ${what}`);
}

async function main(): Promise<void> {
  const [baseUrl, adminKey] = process.argv.slice(2);
  check(Boolean(baseUrl && adminKey), "usage: client.js BASE_URL ADMIN_KEY");
  const admin = createClient<paths>({ baseUrl, headers: { "x-api-key": adminKey } });

  const created = await admin.POST("/keys", { body: { name: "generated client", tier: "free" } });
  check(created.response.status === 201 && created.data !== undefined, `POST /keys: ${created.response.status}`);
  const { id, key, tier } = created.data;
  check(tier === "free", `POST /keys tier ${tier}`);

  const read = await admin.GET("/keys/{id}", { params: { path: { id } } });
  check(read.data?.name === "generated client" && read.data.status === "active", "GET /keys/{id}");

  // The key it made works, and names itself.
  const asKey = createClient<paths>({ baseUrl, headers: { "x-api-key": key } });
  const me = await asKey.GET("/whoami");
  check(me.data?.auth_type === "api_key" && me.data.id === id, `GET /whoami: ${JSON.stringify(me.data)}`);

  // An error is the envelope, typed.
  const missing = await admin.GET("/keys/{id}", { params: { path: { id: "key_00000000000000000000000000000000" } } });
  check(missing.response.status === 404 && missing.error?.error.code === "NOT_FOUND", "GET /keys/{id} of no key");

  const revoked = await admin.DELETE("/keys/{id}", { params: { path: { id } } });
  check(revoked.response.status === 204, `DELETE /keys/{id}: ${revoked.response.status}`);
  const refused = await asKey.GET("/whoami");
  check(refused.response.status === 401 && refused.error?.error.code === "INVALID_API_KEY", "a revoked key");
  console.log(`generated client: created ${id}, read it, called as it, revoked it`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
