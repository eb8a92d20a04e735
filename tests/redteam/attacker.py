"""Run as the unprivileged attacker (via setpriv): one control connection, driven by JSON lines on stdin.

Kept free of boothguard imports: it is the operator's own code, not ours. Each stdin line is one of
  {"call": {...request...}}            → prints the reply
  {"flood": {...request...}, "n": N}   → pipelines N copies, prints {"codes": {code: count}}
  {"idle": N}                          → opens N more connections and keeps them, prints {"open": k}
  {"http_flood": PORT, "n": N, "idle": M} → M idle TCP connections + N unauthenticated requests
"""

import json
import socket
import sys

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
f = sock.makefile("rwb")
kept = []


def reply():
    while True:  # skip the agent's pushes (config, screensaver_state): only replies are counted
        line = f.readline()
        if not line:
            return {"ok": False, "code": "closed"}
        message = json.loads(line)
        if "push" not in message:
            return message


def call(message):
    f.write(json.dumps(message).encode() + b"\n")
    f.flush()
    return reply()


def idle(n):
    opened = 0
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
        except OSError:
            continue
        kept.append(s)
        opened += 1
    return {"open": opened}


def http_flood(port, n, idle_n):
    for _ in range(idle_n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/away HTTP/1.1\r\n")  # never finishes its head
        kept.append(s)
    statuses = {}
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                b"POST /v1/away HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )
            head = s.recv(64).split(b" ")
            code = head[1].decode() if len(head) > 1 else "closed"
        except OSError:
            code = "reset"
        finally:
            s.close()
        statuses[code] = statuses.get(code, 0) + 1
    return {"statuses": statuses}


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if "call" in cmd:
        out = call(cmd["call"])
    elif "flood" in cmd:
        body = (json.dumps(cmd["flood"]) + "\n").encode()
        f.write(body * cmd["n"])
        f.flush()
        codes = {}
        for _ in range(cmd["n"]):
            answer = reply()
            key = "ok" if answer.get("ok") else str(answer.get("code"))
            codes[key] = codes.get(key, 0) + 1
        out = {"codes": codes}
    elif "http_flood" in cmd:
        out = http_flood(cmd["http_flood"], cmd["n"], cmd["idle"])
    elif "idle" in cmd:
        out = idle(cmd["idle"])
    else:
        break
    print(json.dumps(out), flush=True)
