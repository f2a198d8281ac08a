#!/usr/bin/env python3
"""Submit a task to flowork-agent and stream its events (standard library only).

    python3 agent_client.py [AGENT] [INPUT]

Environment: FLOWORK_AGENT_URL (default http://127.0.0.1:1987), FLOWORK_API_KEY (when the
server has `keys:`). Exits 0 when the task succeeded, 1 otherwise.
"""
import json
import os
import sys
import urllib.request

BASE = os.environ.get("FLOWORK_AGENT_URL", "http://127.0.0.1:1987")
KEY = os.environ.get("FLOWORK_API_KEY", "")


def call(method, path, body=None):
    request = urllib.request.Request(BASE + path, method=method)
    if KEY:
        request.add_header("authorization", "Bearer " + KEY)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("content-type", "application/json")
    return urllib.request.urlopen(request, data=data, timeout=300)


def main():
    agent = sys.argv[1] if len(sys.argv) > 1 else "assistant"
    text = sys.argv[2] if len(sys.argv) > 2 else "Say hello"
    with call("POST", "/v1/tasks", {"agent": agent, "input": text}) as response:
        task = json.load(response)
    print("task", task["id"], flush=True)
    state = ""
    # Server-Sent Events: one `data: <CloudEvent JSON>` per event; the stream
    # ends when the task does. After a disconnect, resume with ?after=<last id>.
    with call("GET", "/v1/tasks/%s/events?after=0" % task["id"]) as events:
        for raw in events:
            line = raw.decode().rstrip("\n")
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            print(event["id"], event["type"], flush=True)
            if event["type"] == "dev.flowork.task.finished":
                state = event["data"].get("state", "")
                print("output:", json.dumps(event["data"].get("output")), flush=True)
    print("state:", state)
    return 0 if state == "TASK_STATE_SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
