#!/usr/bin/env node
// Checks the custom resources of rendered manifests (kubectl kustomize output, on stdin or in
// the files named) twice:
//  - against the upstream CRD schemas that the @kubernetes-models packages carry, compiled
//    (types, enums, patterns, required fields; they allow fields they do not know, as the
//    API server's pruning does);
//  - against deploy/schemas/<group>_<version>_<Kind>.json, the fields these manifests use,
//    written from the same CRDs, which refuse any other field (a misspelt one).
// Kinds of the built-in API groups are left to kubernetes-validate; any other kind without a
// schema here fails. `--self-check` also proves, for every resource, that an unknown field and
// a wrongly typed field are refused. Prints `N passed, N failed`.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import Ajv from "ajv";

const here = path.dirname(fileURLToPath(import.meta.url));

const builtIn = new Set(["v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2",
  "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"]);

// The packages' models, by apiVersion and kind. External Secrets' v1 API is its v1beta1 API
// promoted with the same schema; the package has the v1beta1 one.
const models = {
  "gateway.networking.k8s.io/v1/HTTPRoute": ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute", "HTTPRoute"],
  "gateway.networking.k8s.io/v1/Gateway": ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway", "Gateway"],
  "cert-manager.io/v1/ClusterIssuer": ["@kubernetes-models/cert-manager/cert-manager.io/v1/ClusterIssuer", "ClusterIssuer"],
  "cert-manager.io/v1/Certificate": ["@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate", "Certificate"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "external-secrets.io/v1/ExternalSecret": ["@kubernetes-models/external-secrets/external-secrets.io/v1beta1/ExternalSecret", "ExternalSecret"],
  "external-secrets.io/v1/SecretStore": ["@kubernetes-models/external-secrets/external-secrets.io/v1beta1/SecretStore", "SecretStore"],
};
const asPackaged = { "external-secrets.io/v1": "external-secrets.io/v1beta1" };

const schemaDir = path.join(here, "..", "schemas");
const ajv = new Ajv({ allErrors: true, strict: false });
const strictSchemas = {};
for (const f of fs.readdirSync(schemaDir).filter((f) => f.endsWith(".json"))) {
  const key = f.replace(/\.json$/, "").replace(/_/g, "/");
  strictSchemas[key] = ajv.compile(JSON.parse(fs.readFileSync(path.join(schemaDir, f), "utf8")));
}

// The problems of one resource; none when it passes both checks.
async function problems(doc) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const out = [];
  const strict = strictSchemas[key];
  const model = models[key];
  if (!strict || !model) return [`no schema for ${key}`];
  if (!strict(doc)) {
    out.push(...strict.errors.map((e) => `deploy/schemas: ${e.instancePath || "/"} ${e.message}` +
      (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : "")));
  }
  try {
    const Model = (await import(model[0]))[model[1]];
    const copy = JSON.parse(JSON.stringify(doc));
    copy.apiVersion = asPackaged[doc.apiVersion] || doc.apiVersion;
    new Model(copy).validate();
  } catch (e) {
    out.push(`upstream CRD schema: ${e.message}`);
  }
  return out;
}

const args = process.argv.slice(2);
const selfCheck = args.includes("--self-check");
const files = args.filter((a) => a !== "--self-check");
const texts = files.length ? files.map((f) => [f, fs.readFileSync(f, "utf8")]) : [["stdin", fs.readFileSync(0, "utf8")]];
let passed = 0;
let failed = 0;
for (const [file, text] of texts) {
  for (const doc of yaml.loadAll(text)) {
    if (!doc || builtIn.has(doc.apiVersion)) continue;
    const name = `${file}: ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const found = await problems(doc);
    if (found.length) {
      failed++;
      console.log(`FAIL ${name}\n  ${found.join("\n  ")}`);
    } else {
      passed++;
      console.log(`ok   ${name}`);
    }
    if (selfCheck && !found.length) {
      // A misspelt field, and a number where the schema wants a string (or the reverse).
      const unknown = JSON.parse(JSON.stringify(doc));
      unknown.spec.secretNmae = "x";
      const typed = JSON.parse(JSON.stringify(doc));
      const first = Object.keys(typed.spec)[0];
      typed.spec[first] = typeof typed.spec[first] === "string" ? 7 : "seven";
      for (const [what, bad] of [["an unknown field", unknown], [`spec.${first} of another type`, typed]]) {
        if ((await problems(bad)).length) {
          passed++;
        } else {
          failed++;
          console.log(`FAIL ${name}: ${what} is not refused`);
        }
      }
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || passed === 0 ? 1 : 0);
