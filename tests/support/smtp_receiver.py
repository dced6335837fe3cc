"""A plain SMTP receiver on loopback for tests: records each message's envelope and data.

Speaks just enough SMTP for one client at a time (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
no TLS, no auth. ``with SmtpReceiver() as smtp:`` listens on a free port; ``smtp.messages`` holds
``(mail_from, [rcpt_to...], data)`` in arrival order.
"""

from __future__ import annotations

import socketserver

from tests.support.loopback import LoopbackServer


class SmtpReceiver(LoopbackServer):
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self) -> None:
                self.reply("220 localhost test SMTP")
                mail_from, rcpt_to = "", []
                while line := self.rfile.readline():
                    verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
                    verb = verb.upper()
                    if verb == "EHLO":
                        self.reply("250-localhost")
                        self.reply("250 8BITMIME")
                    elif verb in ("HELO", "RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "MAIL":
                        mail_from, rcpt_to = arg.split(":", 1)[1].strip().strip("<>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpt_to.append(arg.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(data.decode())
                        receiver.messages.append((mail_from, rcpt_to, "".join(lines)))
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        super().__init__(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))
