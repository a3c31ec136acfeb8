"""The shout server tested across two hosts, as its author would: with pytest and socklab's fixture.

    pytest examples/shout        # needs socklab installed (its plugin) and a Docker engine
"""


def test_the_server_shouts_back_to_another_host(socklab_lab):
    lab = socklab_lab(hosts={"server": ["lan"], "client": ["lan"]}, files={"/lab/app": "app/"})
    lab.start("server", ["python3", "server.py", "{server.lan.ipv4}", "65432"], cwd="/lab/app",
              ready="log:^Listening on")

    seen = lab.run("client", ["python3", "client.py", "{server.lan.ipv4}", "65432", "Hello, world"],
                   cwd="/lab/app")
    assert (seen.exit_code, seen.stdout) == (0, "HELLO, WORLD\n"), seen


def test_a_message_sent_in_pieces_is_read_whole(socklab_lab):
    """TCP keeps no boundaries: the header and the text arrive in three sends, a moment apart."""
    lab = socklab_lab("shout.toml")  # the scenario beside this file, its service started
    pieces = "(printf '\\000\\000'; sleep 0.2; printf '\\000\\005sh'; sleep 0.2; printf 'out')"
    seen = lab.run("client", shell=f"{pieces} | nc -N {{server.lan.ipv4}} 65432 | tail -c 5")
    assert seen.stdout == "SHOUT", seen
