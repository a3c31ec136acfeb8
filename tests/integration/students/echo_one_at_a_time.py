# A student's echo server that is the first lesson's, in a loop: accept a
# client, echo until it closes, accept the next. It binds to :: with
# IPV6_V6ONLY off, so IPv4 and IPv6 clients are both served, and uses
# sendall(). Many clients one after another are all echoed, even many that
# connect at once (they wait in the listen backlog, and each closes once its
# echo is back); but while one client stays connected, nobody else is
# served. It ignores its arguments and listens on the scenario's port.
import socket

with socket.create_server(("::", 65432), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128) as s:
    while True:
        conn, addr = s.accept()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
