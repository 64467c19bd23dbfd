"""A small MCP server over stdio, in Python's standard library alone: the
README's worked example of sandboxing a Python server that lives in a
virtual environment outside the workspace.

Tools: add_note(text) appends a line to notes.txt in the working directory
(vm-run's workspace); list_notes() returns them. A server built on the
official `mcp` package runs under vm-run the same way.
"""

import json
import os
import sys

PROTOCOL = "2025-06-18"
NOTES = os.path.join(os.getcwd(), "notes.txt")

TOOLS = [
    {
        "name": "add_note",
        "description": "Append a note to notes.txt in the workspace.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {
        "name": "list_notes",
        "description": "Return the notes in notes.txt.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def text_result(text, error=False):
    return {"content": [{"type": "text", "text": text}], "isError": error}


def call(name, args):
    if name == "add_note":
        text = str(args.get("text", "")).replace("\n", " ")
        try:
            with open(NOTES, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as e:
            return text_result(f"cannot write {NOTES}: {e.strerror}", True)
        return text_result("noted")
    if name == "list_notes":
        try:
            with open(NOTES, encoding="utf-8") as f:
                return text_result(f.read())
        except FileNotFoundError:
            return text_result("")
    return None


def handle(msg):
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", PROTOCOL),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes-py", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return call(params.get("name"), params.get("arguments") or {})
    return None


def main():
    # The interpreter this runs in, for the README's example: a venv's
    # python reads pyvenv.cfg next to its bin directory at start.
    print(f"notes-py: python {sys.version.split()[0]} from {sys.prefix}", file=sys.stderr)
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" not in msg:
            continue  # a notification
        result = handle(msg)
        if result is None:
            reply = {"jsonrpc": "2.0", "id": msg["id"],
                     "error": {"code": -32601, "message": f"unknown method or tool: {msg.get('method')}"}}
        else:
            reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
