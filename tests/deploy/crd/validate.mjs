// Validates custom resources against the schemas of @kubernetes-models (KEDA and the
// Prometheus Operator). Reads a JSON array of objects on stdin; prints one line per
// object, "ok <kind>/<name>" or "error <kind>/<name>: <why>", and exits 1 if any object
// failed or is of a kind this script does not know (an unknown kind must not pass).
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "keda.sh/v1alpha1": keda,
  "monitoring.coreos.com/v1": monitoring,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let failed = 0;
for (const object of objects) {
  const what = `${object.kind}/${object.metadata?.name}`;
  const Model = models[object.apiVersion]?.[object.kind];
  if (typeof Model !== "function") {
    console.log(`error ${what}: no schema for ${object.apiVersion} ${object.kind}`);
    failed += 1;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${what}`);
  } catch (error) {
    console.log(`error ${what}: ${String(error.message ?? error).replace(/\s+/g, " ")}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
