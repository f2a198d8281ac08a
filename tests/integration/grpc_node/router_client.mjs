// Calls flowork-router's RouterService from Node with @grpc/grpc-js, the
// service definition loaded by @grpc/proto-loader from our .proto files in
// the source tree (proto/; google/protobuf comes with proto-loader).
//
//   node router_client.mjs HOST:PORT
//
// The router (see tests/integration/grpc_node_test.cc) serves route "chat"
// and model "m1" on flowork-mockllm answering "hi" with
// "Mock answer to: hi." in 4 tokens. Exits non-zero on the first surprise.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = process.env.FLOWORK_PROTO_DIR ?? path.resolve(here, '../../../proto');
const target = process.argv[2] ?? process.env.FLOWORK_ROUTER_GRPC;
if (!target) {
  console.error('usage: node router_client.mjs HOST:PORT (or FLOWORK_ROUTER_GRPC)');
  process.exit(2);
}

const definition = protoLoader.loadSync('flowork/router/v1/router.proto', {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { RouterService } = grpc.loadPackageDefinition(definition).flowork.router.v1;
const client = new RouterService(target, grpc.credentials.createInsecure());

const deadline = () => new Date(Date.now() + 10_000);

// A unary call; resolves to {response, metadata} (the initial metadata).
function unary(method, request, metadata = new grpc.Metadata()) {
  return new Promise((resolve, reject) => {
    let initial = new grpc.Metadata();
    const call = client[method](request, metadata, { deadline: deadline() }, (error, response) => {
      if (error) reject(error);
      else resolve({ response, metadata: initial });
    });
    call.on('metadata', (m) => {
      initial = m;
    });
  });
}

// A server-streaming call; resolves to every message once the stream ends.
function streamed(method, request) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const call = client[method](request, new grpc.Metadata(), { deadline: deadline() });
    call.on('data', (message) => messages.push(message));
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

const userSays = (text) => ({ role: 'ROLE_USER', content: [{ text }] });

// ListModels: the route and the model of the configuration.
{
  const { response } = await unary('ListModels', {});
  const byId = Object.fromEntries(response.models.map((m) => [m.id, m]));
  assert.equal(byId.chat?.kind, 'KIND_ROUTE', JSON.stringify(response));
  assert.deepEqual(byId.chat.candidates, ['m1']);
  assert.equal(byId.m1?.kind, 'KIND_MODEL');
  console.log(`ListModels: ${response.models.map((m) => m.id).join(', ')}`);
}

// Chat: text, usage, the endpoint in the answer and in the metadata; a set
// zero (temperature 0) and provider-specific extra parameters go along.
{
  const { response, metadata } = await unary('Chat', {
    model: 'chat',
    messages: [userSays('hi')],
    temperature: 0,
    extra: { fields: { user: { stringValue: 'node-test' } } },
  });
  assert.equal(response.message.role, 'ROLE_ASSISTANT');
  assert.equal(response.message.content[0].text, 'Mock answer to: hi.');
  assert.equal(response.finish_reason, 'stop');
  assert.equal(response.endpoint, 'm1@mock');
  assert.equal(response.usage.completion_tokens, 4);
  assert.equal(response.usage.total_tokens, response.usage.prompt_tokens + 4);
  assert.deepEqual(metadata.get('x-flowork-endpoint'), ['m1@mock']);
  console.log(`Chat: ${JSON.stringify(response.message.content[0].text)} from ${response.endpoint}`);
}

// Chat with a tool: the model's call comes back typed.
{
  const { response } = await unary('Chat', {
    model: 'chat',
    messages: [userSays('find call:search cats')],
    tools: [
      {
        name: 'search',
        description: 'Searches the catalog.',
        parameters: { fields: { type: { stringValue: 'object' } } },
      },
    ],
  });
  assert.equal(response.finish_reason, 'tool_calls');
  assert.equal(response.message.tool_calls.length, 1);
  assert.equal(response.message.tool_calls[0].name, 'search');
  assert.deepEqual(JSON.parse(response.message.tool_calls[0].arguments), { query: 'cats' });
  console.log(`Chat with tools: ${response.message.tool_calls[0].name}(${response.message.tool_calls[0].arguments})`);
}

// StreamChat: the answer in chunks, usage on the last one.
{
  const chunks = await streamed('StreamChat', { model: 'chat', messages: [userSays('hi')] });
  assert.ok(chunks.length >= 4, `only ${chunks.length} chunks`);
  assert.equal(chunks.map((c) => c.delta?.content ?? '').join(''), 'Mock answer to: hi.');
  assert.equal(chunks[0].endpoint, 'm1@mock');
  const last = chunks[chunks.length - 1];
  assert.ok(last.usage, 'no usage on the last chunk');
  assert.equal(last.usage.completion_tokens, 4);
  assert.ok(chunks.some((c) => c.finish_reason === 'stop'));
  console.log(`StreamChat: ${chunks.length} chunks, usage ${JSON.stringify(last.usage)}`);
}

// Embed: one vector per input.
{
  const { response } = await unary('Embed', { model: 'm1', input: ['one', 'two'] });
  assert.equal(response.embeddings.length, 2);
  assert.ok(response.embeddings[0].values.length > 0);
  console.log(`Embed: ${response.embeddings.length} vectors of ${response.embeddings[0].values.length}`);
}

// Errors are gRPC statuses.
{
  await assert.rejects(unary('Chat', { model: 'gpt-nope', messages: [userSays('hi')] }), (error) => {
    assert.equal(error.code, grpc.status.NOT_FOUND, error.message);
    return true;
  });
  console.log('Chat with an unknown model: NOT_FOUND');
}

client.close();
console.log('router_client: ok');
