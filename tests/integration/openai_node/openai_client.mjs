// Drives flowork-router with the official `openai` npm client: lists models,
// chats, and streams. Prints one line per check; exits non-zero if any fails.
//
// Usage: node openai_client.mjs http://127.0.0.1:PORT/v1
import OpenAI from 'openai';

const baseURL = process.argv[2];
if (!baseURL) {
  console.error('usage: node openai_client.mjs BASE_URL (e.g. http://127.0.0.1:8080/v1)');
  process.exit(2);
}

// The router does not check keys yet. No retries, so a rejected request is
// reported as it happened rather than retried into a timeout.
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 15_000 });
const expected = 'Mock answer to: hi.';
const messages = [{ role: 'user', content: 'hi' }];
let failures = 0;

// Runs one check; `body` returns a description of what it saw or throws.
async function check(name, body) {
  try {
    console.log(`PASS ${name}: ${await body()}`);
  } catch (error) {
    failures++;
    console.log(`FAIL ${name}: ${describe(error)}`);
  }
}

function describe(error) {
  let cause = '';
  for (let c = error?.cause; c; c = c.cause) {
    cause += ` (cause: ${c.code ? `${c.code} ` : ''}${c.message ?? c})`;
  }
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    return `${error.constructor.name} status=${error.status} error=${JSON.stringify(error.error)} ` +
        `message=${error.message}`;
  }
  return `${error?.constructor?.name ?? 'Error'}: ${error?.message ?? error}${cause}`;
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

await check('models.list includes "chat"', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  expect(ids.includes('chat'), `ids were ${JSON.stringify(ids)}`);
  return `ids ${JSON.stringify(ids)}`;
});

await check('chat.completions.create', async () => {
  const completion = await client.chat.completions.create({ model: 'chat', messages });
  const content = completion.choices?.[0]?.message?.content;
  expect(content === expected,
         `content was ${JSON.stringify(content)}; response ${JSON.stringify(completion)}`);
  return JSON.stringify(content);
});

await check('chat.completions.create stream', async () => {
  const stream = await client.chat.completions.create({ model: 'chat', messages, stream: true });
  let chunks = 0;
  let content = '';
  for await (const chunk of stream) {
    chunks++;
    content += chunk.choices?.[0]?.delta?.content ?? '';
  }
  expect(content === expected, `content was ${JSON.stringify(content)} over ${chunks} chunks`);
  expect(chunks > 1, `only ${chunks} chunk arrived`);
  return `${JSON.stringify(content)} over ${chunks} chunks`;
});

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
