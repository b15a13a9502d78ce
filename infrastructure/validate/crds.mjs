// Validates custom resources (KEDA, VPA, Istio, Gateway API, CloudNativePG,
// prometheus-operator) against the schemas of their CRDs as packaged by kubernetes-models
// (npm), and the kinds no package
// covers (SpinKube's SpinApp, redis-operator's CRs, k6-operator's TestRun) against the schemas in
// infrastructure/schemas/. Core Kubernetes kinds are skipped here (kubernetes-validate checks
// them); any other kind is an error, so nothing goes unchecked.
//
//   node infrastructure/validate/crds.mjs FILE.yaml…
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import Ajv2020 from "ajv/dist/2020.js";

const here = dirname(fileURLToPath(import.meta.url));
const schemas = join(here, "..", "schemas");

const CORE = new Set([
  "v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "autoscaling/v1",
  "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
]);

const PACKAGES = {
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "autoscaling.k8s.io/v1": "@kubernetes-models/autoscaler/autoscaling.k8s.io/v1",
  "networking.istio.io/v1": "@kubernetes-models/istio/networking.istio.io/v1",
  "gateway.networking.k8s.io/v1": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1",
  "postgresql.cnpg.io/v1": "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

const ajv = new Ajv2020({ allErrors: true, strict: false });

async function validate(doc) {
  const { apiVersion, kind } = doc;
  if (CORE.has(apiVersion)) return null;
  const where = `${kind} ${doc.metadata?.namespace ?? ""}/${doc.metadata?.name}`;
  const pkg = PACKAGES[apiVersion];
  if (pkg) {
    const mod = await import(pkg);
    const Model = mod[kind] ?? mod.default?.[kind];
    if (!Model) return `${where}: ${apiVersion} has no kind ${kind} in ${pkg}`;
    try {
      new Model(doc).validate();
      return null;
    } catch (e) {
      return `${where}: ${e.message}`;
    }
  }
  const file = join(schemas, `${apiVersion.replace("/", "_")}_${kind}.json`);
  if (existsSync(file)) {
    const check = ajv.compile(JSON.parse(readFileSync(file, "utf8")));
    if (check(doc)) return null;
    return `${where}: ${check.errors.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ")}`;
  }
  return `${where}: no schema for ${apiVersion} ${kind}: add its kubernetes-models package to PACKAGES or a schema to infrastructure/schemas/`;
}

let checked = 0;
const failures = [];
for (const path of process.argv.slice(2)) {
  for (const parsed of parseAllDocuments(readFileSync(path, "utf8"))) {
    if (parsed.errors.length) {
      failures.push(`${path}: ${parsed.errors[0].message}`);
      continue;
    }
    const doc = parsed.toJS();
    if (!doc) continue;
    const error = await validate(doc);
    if (!CORE.has(doc.apiVersion)) checked += 1;
    if (error) failures.push(`${path}: ${error}`);
  }
}
for (const f of failures) console.error(`FAIL ${f}`);
console.log(`custom resources: ${checked - failures.length} valid, ${failures.length} invalid`);
process.exit(failures.length ? 1 : 0);
