"""The SDK against a real crabmail: signup and the token file, send and receive, waits and codes,
idempotent sends, pagination, typed errors, and retries that honour Retry-After."""

import stat
import time

import pytest

from crabmail import Crabmail, CrabmailError


def client(server, tmp_path, name="token"):
    return Crabmail(server.url, token_file=tmp_path / name)


def arrived(mail, inbox_id, count):
    """Waits for `count` messages in the inbox, long-polling (the server answers as mail lands)."""
    seen = []
    while len(seen) < count:
        got = mail.receive(inbox_id, wait=30)
        assert got, f"only {len(seen)} of {count} messages arrived within 30 s"
        seen += got


def test_signs_up_once_and_keeps_the_token(server, tmp_path, monkeypatch):
    monkeypatch.delenv("CRABMAIL_TOKEN", raising=False)
    first = client(server, tmp_path)
    path = tmp_path / "token"
    assert path.read_text() == first.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inbox = first.create_inbox(name="kept")
    # A second client with the same file is the same account.
    again = client(server, tmp_path)
    assert again.token == first.token
    assert [i.id for i in again.list_inboxes()] == [inbox.id]
    with pytest.raises(CrabmailError) as refused:
        Crabmail(server.url, token_file=tmp_path / "none", signup=False)
    assert refused.value.code == "no_token"


def test_send_receive_and_wait(server, tmp_path):
    mail = client(server, tmp_path)
    sender = mail.create_inbox(name="sender")
    reader = mail.create_inbox(name="reader")
    sent = mail.send(sender.id, to=reader.address, subject="status report", text="all green")
    assert sent.status == "queued"
    got = mail.wait(reader.id, subject_contains="status report", timeout=30, lookback=60)
    assert got is not None and got.subject == "status report"
    assert got.from_address == sender.address
    assert "all green" in got.safe_text and got.risk_level == "low"
    # receive: everything the first time, then only what is new.
    assert [m.subject for m in mail.receive(reader.id)] == ["status report"]
    assert mail.receive(reader.id) == []
    assert mail.delivery_status(sent.id)["status"] == "delivered"
    # A reply goes back to the sender, threaded.
    mail.reply(got.id, text="thanks")
    answer = mail.wait(sender.id, subject_contains="Re: status report", timeout=30, lookback=60)
    assert answer is not None and answer.thread_id is not None
    assert mail.wait(reader.id, subject_contains="never sent", timeout=1) is None


def test_wait_for_code(server, tmp_path):
    mail = client(server, tmp_path)
    inbox = mail.create_inbox(name="codes")
    mail.send(inbox.id, to=inbox.address, subject="Your sign-in code", text="Your verification code is 482913.")
    assert mail.wait_for_code(inbox.id, timeout=30) == "482913"


def test_a_retried_send_is_sent_once(server, tmp_path):
    mail = client(server, tmp_path)
    inbox = mail.create_inbox(name="once")
    first = mail.send(inbox.id, to=inbox.address, subject="once", text="x", idempotency_key="order-7")
    again = mail.send(inbox.id, to=inbox.address, subject="once", text="x", idempotency_key="order-7")
    assert first.id == again.id
    # Without a key of your own, each call is its own send.
    other = mail.send(inbox.id, to=inbox.address, subject="once", text="x")
    assert other.id != first.id
    arrived(mail, inbox.id, 2)
    assert len(list(mail.iter_messages(inbox.id))) == 2


def test_pages_and_events(server, tmp_path):
    mail = client(server, tmp_path)
    inbox = mail.create_inbox(name="pages")
    for n in range(5):
        mail.send(inbox.id, to=inbox.address, subject=f"n{n}", text="x")
    arrived(mail, inbox.id, 5)
    subjects = [m.subject for m in mail.iter_messages(inbox.id, page_size=2)]
    assert sorted(subjects) == [f"n{n}" for n in range(5)]
    assert mail.messages(inbox.id, report="bounce").items == []
    assert len(mail.messages(inbox.id, report="none").items) == 5
    events = list(mail.iter_events())
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert {"message.delivered", "message.received"} <= {e.type for e in events}
    assert all(e.id.startswith("evt_") for e in events)


def test_errors_are_typed(server, tmp_path):
    mail = client(server, tmp_path)
    inbox = mail.create_inbox(name="errors")
    with pytest.raises(CrabmailError) as missing:
        mail.get_message("msg_" + "0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(CrabmailError) as invalid:
        mail.send(inbox.id, to="not an address", text="x")
    assert invalid.value.status == 422 and invalid.value.field is not None
    with pytest.raises(CrabmailError) as wrong:
        Crabmail(server.url, token="tok_wrong").list_inboxes()
    assert wrong.value.code == "unauthorized"
    with pytest.raises(CrabmailError) as down:
        Crabmail("http://127.0.0.1:9", token="tok_x", max_retries=1).list_inboxes()
    assert down.value.code == "unreachable"


def test_retries_honour_retry_after(start_server, tmp_path):
    # One request a second, a burst of two: a quick run of calls meets 429 with Retry-After.
    server = start_server("api.rate_limit=1", "api.rate_burst=2")
    mail = client(server, tmp_path)
    started = time.monotonic()
    for _ in range(5):
        mail.list_inboxes()
    # Five calls at one a second after a burst of two (signup included): the client waited as
    # told instead of failing.
    assert time.monotonic() - started >= 2.0
    impatient = Crabmail(server.url, token=mail.token, max_retries=0)
    with pytest.raises(CrabmailError) as limited:
        for _ in range(5):
            impatient.list_inboxes()
    assert limited.value.status == 429
