// Checks that the `data` node pool is never scaled down: every workload that tolerates the
// pool's taint (surge.dev/data) also selects the pool (nodeSelector surge.dev/pool: data)
// and marks its pods `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, which keeps
// the cluster autoscaler from removing their nodes. Covers pod templates (StatefulSet,
// Deployment, Job) and CloudNativePG clusters (inheritedMetadata, affinity).
//
//   node infrastructure/validate/data-pool.mjs FILE.yaml…
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const TAINT = "surge.dev/data";
const SAFE = "cluster-autoscaler.kubernetes.io/safe-to-evict";

// The pod placement and pod annotations of a document, where it has them.
function placement(doc) {
  if (doc.kind === "Cluster" && doc.apiVersion?.startsWith("postgresql.cnpg.io/")) {
    return {
      tolerations: doc.spec?.affinity?.tolerations ?? [],
      nodeSelector: doc.spec?.affinity?.nodeSelector ?? {},
      annotations: doc.spec?.inheritedMetadata?.annotations ?? {},
    };
  }
  const template = doc.spec?.template ?? doc.spec?.jobTemplate?.spec?.template;
  if (!template) return null;
  return {
    tolerations: template.spec?.tolerations ?? [],
    nodeSelector: template.spec?.nodeSelector ?? {},
    annotations: template.metadata?.annotations ?? {},
  };
}

let checked = 0;
const failures = [];
for (const path of process.argv.slice(2)) {
  for (const parsed of parseAllDocuments(readFileSync(path, "utf8"))) {
    const doc = parsed.toJS();
    const p = doc && placement(doc);
    if (!p || !p.tolerations.some((t) => t.key === TAINT)) continue;
    checked += 1;
    const where = `${doc.kind} ${doc.metadata?.namespace ?? ""}/${doc.metadata?.name}`;
    if (p.nodeSelector["surge.dev/pool"] !== "data") {
      failures.push(`${where}: tolerates ${TAINT} but does not select surge.dev/pool: data`);
    }
    if (p.annotations[SAFE] !== "false") {
      failures.push(`${where}: on the data pool without ${SAFE}: "false" (the autoscaler could remove its node)`);
    }
  }
}
for (const f of failures) console.error(`FAIL ${f}`);
console.log(`data pool: ${checked - failures.length} of ${checked} workloads pinned and never evicted by the autoscaler`);
if (checked === 0) console.error("FAIL no workload tolerates the data pool's taint");
process.exit(failures.length || checked === 0 ? 1 : 0);
