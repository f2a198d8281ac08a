// Submit a task to flowork-agent and stream its events, with Node's fetch
// (Node 18+, no packages):
//   node client.mjs [AGENT] [INPUT]
// Environment: FLOWORK_AGENT_URL (default http://127.0.0.1:1987),
// FLOWORK_API_KEY (when the server has `keys:`). Exit 0 when the task succeeded.
const base = process.env.FLOWORK_AGENT_URL ?? 'http://127.0.0.1:1987';
const headers = { 'content-type': 'application/json' };
if (process.env.FLOWORK_API_KEY) headers.authorization = `Bearer ${process.env.FLOWORK_API_KEY}`;
const [agent = 'assistant', input = 'Say hello'] = process.argv.slice(2);

const submitted = await fetch(`${base}/v1/tasks`, {
  method: 'POST', headers, body: JSON.stringify({ agent, input }),
});
if (!submitted.ok) throw new Error(`submit: ${submitted.status} ${await submitted.text()}`);
const task = await submitted.json();
console.log('task', task.id);

// Server-Sent Events: one `data: <CloudEvent JSON>` per event; the stream
// ends with the task. After a disconnect, resume with ?after=<last id>.
const events = await fetch(`${base}/v1/tasks/${task.id}/events?after=0`, { headers });
let state = '';
let buffered = '';
const decoder = new TextDecoder();
for await (const chunk of events.body) {
  buffered += decoder.decode(chunk, { stream: true });
  let end;
  while ((end = buffered.indexOf('\n\n')) >= 0) {
    const block = buffered.slice(0, end);
    buffered = buffered.slice(end + 2);
    for (const line of block.split('\n')) {
      if (!line.startsWith('data: ')) continue;
      const event = JSON.parse(line.slice(6));
      console.log(event.id, event.type);
      if (event.type === 'dev.flowork.task.finished') {
        state = event.data.state;
        console.log('output:', JSON.stringify(event.data.output));
      }
    }
  }
}
console.log('state:', state);
process.exit(state === 'TASK_STATE_SUCCEEDED' ? 0 : 1);
