"""A dependency of the server, vendored beside the Dockerfile (standard library only)."""


def shout(text: str) -> str:
    return f"{text.upper()}!"
