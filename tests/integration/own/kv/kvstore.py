"""The key-value store behind kvserver.py, and its one-line protocol.

A request is one line: ``SET key value``, ``GET key`` or ``DEL key``; the
answer is one line: ``OK``, the value, ``NOT FOUND`` or ``ERROR <why>``.
"""


class Store:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def answer(self, line: str) -> str:
        command, _, rest = line.strip().partition(" ")
        key, _, value = rest.partition(" ")
        if command == "SET" and key and value:
            self.values[key] = value
            return "OK"
        if command == "GET" and key:
            return self.values.get(key, "NOT FOUND")
        if command == "DEL" and key:
            return "OK" if self.values.pop(key, None) is not None else "NOT FOUND"
        return f"ERROR cannot read {line.strip()!r}"
