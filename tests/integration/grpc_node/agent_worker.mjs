// A remote worker for flowork-agent written in Node: leases work of a
// KIND_REMOTE agent over gRPC (WorkerService, loaded by @grpc/proto-loader
// from our .proto files), heartbeats while working and completes it with
// {echo: <input>, worker: <id>}.
//
//   node agent_worker.mjs HOST:PORT --id ID --agent NAME [--key KEY]
//        [--mode work|hang|stall] [--stall-ms N] [--work-ms N] [--max N]
//
// Modes (for tests/integration/remote_worker_test.cc):
//   work   lease, complete, repeat (until --max completions; 0 = forever)
//   hang   lease once, print it, then hang without heartbeats (to be killed)
//   stall  lease once, sleep --stall-ms without heartbeats (past the lease
//          TTL), then try to complete: prints whether it was rejected
// Prints one line per event: "leased TASK token=T", "completed TASK",
// "rejected TASK code=C details=...", "cancelled TASK".
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = process.env.FLOWORK_PROTO_DIR ?? path.resolve(here, '../../../proto');

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    id: { type: 'string', default: `node-${process.pid}` },
    agent: { type: 'string', multiple: true },
    key: { type: 'string' },
    mode: { type: 'string', default: 'work' },
    'stall-ms': { type: 'string', default: '3000' },
    'work-ms': { type: 'string', default: '0' },
    max: { type: 'string', default: '0' },
  },
});
const target = positionals[0];
if (!target || !opts.agent) {
  console.error('usage: node agent_worker.mjs HOST:PORT --agent NAME [--id ID] [--mode work|hang|stall]');
  process.exit(2);
}

const definition = protoLoader.loadSync('flowork/agent/v1/worker_service.proto', {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { WorkerService } = grpc.loadPackageDefinition(definition).flowork.agent.v1;
const client = new WorkerService(target, grpc.credentials.createInsecure());

// google.protobuf.Value <-> plain JSON. proto-loader's bundled google/protobuf
// types keep protobufjs's camelCase field names even with keepCase.
function fromValue(v) {
  switch (v?.kind) {
    case 'stringValue': return v.stringValue;
    case 'numberValue': return v.numberValue;
    case 'boolValue': return v.boolValue;
    case 'structValue':
      return Object.fromEntries(
        Object.entries(v.structValue.fields ?? {}).map(([k, x]) => [k, fromValue(x)]));
    case 'listValue': return (v.listValue.values ?? []).map(fromValue);
    default: return null;
  }
}
function toValue(x) {
  if (x === null || x === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof x === 'string') return { stringValue: x };
  if (typeof x === 'number') return { numberValue: x };
  if (typeof x === 'boolean') return { boolValue: x };
  if (Array.isArray(x)) return { listValue: { values: x.map(toValue) } };
  return {
    structValue: { fields: Object.fromEntries(Object.entries(x).map(([k, y]) => [k, toValue(y)])) },
  };
}

function call(method, request, timeoutMs = 10_000) {
  const metadata = new grpc.Metadata();
  if (opts.key) metadata.set('authorization', `Bearer ${opts.key}`);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: new Date(Date.now() + timeoutMs) },
      (error, response) => (error ? reject(error) : resolve(response)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) ?? code;

async function lease() {
  for (;;) {
    const { work } = await call('Lease', { worker_id: opts.id, agents: opts.agent, wait_ms: 2000 },
      5_000);
    if (work) {
      console.log(`leased ${work.task_id} token=${work.fencing_token} attempt=${work.attempt}`);
      return work;
    }
  }
}

// Finishes `work` (heartbeating while it takes --work-ms); false when the
// server refused the completion.
async function finish(work) {
  const lease = { lease_id: work.lease_id, fencing_token: work.fencing_token };
  const deadline = Date.now() + Number(opts['work-ms']);
  while (Date.now() < deadline) {
    const beat = await call('Heartbeat', lease);
    if (beat.cancelled) {
      console.log(`cancelled ${work.task_id}`);
      return false;
    }
    await sleep(Math.min(300, Math.max(0, deadline - Date.now())));
  }
  const output = { echo: fromValue(work.input), worker: opts.id };
  try {
    await call('Complete', { ...lease, output: toValue(output) });
    console.log(`completed ${work.task_id}`);
    return true;
  } catch (error) {
    console.log(`rejected ${work.task_id} code=${codeName(error.code)} details=${error.details}`);
    return false;
  }
}

try {
  if (opts.mode === 'hang') {
    await lease();
    await new Promise(() => {}); // Holds the lease without heartbeats until killed.
  } else if (opts.mode === 'stall') {
    const work = await lease();
    await sleep(Number(opts['stall-ms']));
    await finish(work);
  } else {
    const max = Number(opts.max);
    for (let done = 0; max === 0 || done < max;) {
      if (await finish(await lease())) done++;
    }
  }
  client.close();
} catch (error) {
  console.error(`agent_worker: ${error.code !== undefined ? codeName(error.code) + ': ' : ''}` +
    `${error.details ?? error.stack}`);
  process.exit(1);
}
