# A student's echo server done right, the tutorial's multi-connection way:
# one thread, a selectors loop, non-blocking sockets. Each connection keeps
# the bytes it still owes its client; send() takes what the socket buffer
# has room for, and its count says how much of the rest is still owed, so
# nothing is lost to a slow reader. While a client owes a lot (it sends but
# does not read) the server stops reading from it until it catches up. Bound
# to :: with IPV6_V6ONLY off, so IPv4 and IPv6 clients are both served; it
# ignores its arguments and listens on the scenario's port.
import selectors
import socket

OWED_MAX = 1 << 20  # beyond this, stop reading from that client until it has read its echo

selector = selectors.DefaultSelector()


def accept(listening):
    conn, addr = listening.accept()
    conn.setblocking(False)
    selector.register(conn, selectors.EVENT_READ, {"owed": bytearray(), "eof": False})


def service(conn, state, mask):
    owed = state["owed"]
    if mask & selectors.EVENT_READ:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            data, owed[:] = b"", b""
        if data:
            owed += data
        elif data == b"":
            state["eof"] = True  # the client is done sending; finish the echo, then close
    if owed:
        try:
            sent = conn.send(owed)  # may take less than all of it: the rest stays owed
        except BlockingIOError:
            sent = 0
        except OSError:
            sent, state["eof"] = len(owed), True
        del owed[:sent]
    if state["eof"] and not owed:
        selector.unregister(conn)
        conn.close()
        return
    events = 0 if state["eof"] or len(owed) > OWED_MAX else selectors.EVENT_READ
    selector.modify(conn, events | (selectors.EVENT_WRITE if owed else 0), state)


with socket.create_server(("::", 65432), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024) as listening:
    listening.setblocking(False)
    selector.register(listening, selectors.EVENT_READ, None)
    while True:
        for key, mask in selector.select():
            if key.data is None:
                accept(key.fileobj)
            else:
                service(key.fileobj, key.data, mask)
