"""Never starts: a misspelt module the author never ran."""

import sys

import sockets  # type: ignore[import-not-found]  # the bug: there is no such module

host, port = sys.argv[1], int(sys.argv[2])
server = sockets.socket()
