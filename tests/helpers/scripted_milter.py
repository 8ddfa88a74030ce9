#!/usr/bin/python3
# A milter for tern's black-box tests (python3-milter). Its verdicts follow
# the message, so one instance serves every test:
#   RCPT reject@...    -> REJECT (tern's default 550 5.7.1 text)
#   RCPT tempfail@...  -> TEMPFAIL
#   RCPT custom@...    -> REJECT with its own "554 5.7.0 custom refusal"
#   RCPT discard@...   -> DISCARD (the whole message)
#   X-Test: reject     -> REJECT at the end of the message, own text
#   X-Test: tempfail   -> TEMPFAIL at the end of the message
#   X-Test: discard    -> DISCARD at the end of the message
#   X-Test: replace-body      -> the body becomes "replaced by the test milter"
#   X-Test: change-subject    -> Subject becomes "changed by milter"
#   X-Test: delete-subject    -> Subject is removed
#   X-Test: insert-first      -> "X-First: top" inserted as the first field
#   X-Test: quarantine        -> quarantined (tern stores it and logs)
#   X-Test: add-rcpt          -> asks to add a recipient (tern logs, ignores)
# Every accepted message gets "X-Test-Milter: seen rcpts=N" and
# "X-Test-Milter-Client: <the CONNECT hostname>".
# Usage: scripted_milter.py inet:PORT@127.0.0.1
import sys

import Milter


class ScriptedMilter(Milter.Base):
    def __init__(self):
        self.test = ""
        self.rcpts = 0
        self.client = ""

    def connect(self, hostname, family, hostaddr):
        self.client = hostname
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.test = ""
        self.rcpts = 0
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        local = to.strip("<>").split("@")[0].lower()
        if local == "reject":
            return Milter.REJECT
        if local == "tempfail":
            return Milter.TEMPFAIL
        if local == "custom":
            self.setreply("554", "5.7.0", "custom refusal")
            return Milter.REJECT
        if local == "discard":
            return Milter.DISCARD
        self.rcpts += 1
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "x-test":
            self.test = value.strip().lower()
        return Milter.CONTINUE

    def eom(self):
        t = self.test
        if t == "reject":
            self.setreply("550", "5.7.1", "message refused by the test milter")
            return Milter.REJECT
        if t == "tempfail":
            return Milter.TEMPFAIL
        if t == "discard":
            return Milter.DISCARD
        self.addheader("X-Test-Milter", "seen rcpts=%d" % self.rcpts)
        self.addheader("X-Test-Milter-Client", self.client)
        if t == "replace-body":
            self.replacebody(b"replaced by the test milter\r\n")
        elif t == "change-subject":
            self.chgheader("Subject", 1, "changed by milter")
        elif t == "delete-subject":
            self.chgheader("Subject", 1, "")
        elif t == "insert-first":
            self.addheader("X-First", "top", 0)
        elif t == "quarantine":
            self.quarantine("test quarantine")
        elif t == "add-rcpt":
            self.addrcpt("<extra@test.example>")
        return Milter.ACCEPT


def main():
    Milter.factory = ScriptedMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY | Milter.CHGHDRS | Milter.QUARANTINE | Milter.ADDRCPT)
    sys.stdout.flush()
    Milter.runmilter("scripted", sys.argv[1], 60)


if __name__ == "__main__":
    main()
