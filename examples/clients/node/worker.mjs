// A flowork remote worker in Node: serves the KIND_REMOTE agent "echo" by
// leasing its tasks over gRPC (flowork.agent.v1.WorkerService), keeping the
// lease alive with heartbeats while it works, and completing each task with
// its output. See README.md.
//
//   FLOWORK_AGENT_GRPC=127.0.0.1:1988 FLOWORK_API_KEY=... node worker.mjs
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = process.env.FLOWORK_PROTO_DIR ?? path.resolve(here, '../../../proto');
const target = process.env.FLOWORK_AGENT_GRPC ?? '127.0.0.1:1988';
const agent = process.env.FLOWORK_AGENT ?? 'echo';
const workerId = `${os.hostname()}-${process.pid}`;

const definition = protoLoader.loadSync('flowork/agent/v1/worker_service.proto', {
  includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const { WorkerService } = grpc.loadPackageDefinition(definition).flowork.agent.v1;
const client = new WorkerService(target, grpc.credentials.createInsecure());

function call(method, request, timeoutMs = 10_000) {
  const metadata = new grpc.Metadata();
  if (process.env.FLOWORK_API_KEY) metadata.set('authorization', `Bearer ${process.env.FLOWORK_API_KEY}`);
  return new Promise((resolve, reject) =>
    client[method](request, metadata, { deadline: new Date(Date.now() + timeoutMs) },
      (error, response) => (error ? reject(error) : resolve(response))));
}

// google.protobuf.Value <-> JSON (proto-loader keeps protobufjs's camelCase
// names for the well-known types).
const fromValue = (v) => ({
  stringValue: () => v.stringValue, numberValue: () => v.numberValue, boolValue: () => v.boolValue,
  structValue: () => Object.fromEntries(Object.entries(v.structValue.fields ?? {}).map(([k, x]) => [k, fromValue(x)])),
  listValue: () => (v.listValue.values ?? []).map(fromValue),
}[v?.kind] ?? (() => null))();
const toValue = (x) =>
  x === null || x === undefined ? { nullValue: 'NULL_VALUE' }
  : typeof x === 'string' ? { stringValue: x }
  : typeof x === 'number' ? { numberValue: x }
  : typeof x === 'boolean' ? { boolValue: x }
  : Array.isArray(x) ? { listValue: { values: x.map(toValue) } }
  : { structValue: { fields: Object.fromEntries(Object.entries(x).map(([k, y]) => [k, toValue(y)])) } };

// The actual work. Replace with yours.
async function handle(input) {
  return { echo: input, by: workerId };
}

for (;;) {
  // Long-poll: returns with work, or empty after up to 20 s.
  const { work } = await call('Lease', { worker_id: workerId, agents: [agent], wait_ms: 20_000 }, 30_000);
  if (!work) continue;
  const lease = { lease_id: work.lease_id, fencing_token: work.fencing_token };
  console.log(`task ${work.task_id} (attempt ${work.attempt}, token ${work.fencing_token})`);
  // Heartbeat well within the lease TTL (10 s by default) while working.
  let cancelled = false;
  const beat = setInterval(() => call('Heartbeat', lease)
    .then((r) => { cancelled ||= r.cancelled; })
    .catch(() => { cancelled = true; }), 3_000);
  try {
    const output = await handle(fromValue(work.input));
    if (!cancelled) await call('Complete', { ...lease, output: toValue(output) });
  } catch (error) {
    // ABORTED: our lease expired and the work went to another worker; drop it.
    if (error.code === grpc.status.ABORTED || error.code === grpc.status.FAILED_PRECONDITION) {
      console.log(`dropped ${work.task_id}: ${error.details}`);
    } else {
      await call('Fail', { ...lease, error: String(error.message ?? error), retryable: true })
        .catch(() => {});
    }
  } finally {
    clearInterval(beat);
  }
}
