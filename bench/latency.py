#!/usr/bin/env python3
"""Delay from the 250 that ends DATA to the answer of a long-poll waiting on that inbox.

For each message: a thread holds GET /v1/inboxes/{id}/messages?wait=30 after the current cursor;
the main thread sends one message with smtplib and notes when the 250 arrived; the delay is the
long-poll's answer time minus that. Negative values mean the answer came before the client had
read its 250 (the message is readable as soon as it is committed and parsed)."""
import argparse, json, smtplib, statistics, threading, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--mx", required=True)
p.add_argument("--api", required=True)
p.add_argument("--token", required=True)
p.add_argument("--inbox", required=True)
p.add_argument("--to", default="inbox@bench.test")
p.add_argument("--count", type=int, default=300)
a = p.parse_args()

def page(after, wait):
    req = urllib.request.Request(
        f"http://{a.api}/v1/inboxes/{a.inbox}/messages?limit=100&after={after}&wait={wait}",
        headers={"Authorization": f"Bearer {a.token}"})
    return json.load(urllib.request.urlopen(req, timeout=60))

cursor = "0"
while True:  # skip what is already there
    p0 = page(cursor, 0)
    if not p0["messages"]:
        break
    cursor = p0["next_cursor"]

host, port = a.mx.split(":")
smtp = smtplib.SMTP(host, int(port))
smtp.ehlo("latency.bench")
delays = []
for i in range(a.count):
    box = {}
    def poll():
        got = page(cursor, 30)
        box["t"] = time.perf_counter()
        box["page"] = got
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.005)  # let the poll reach the server and start waiting
    smtp.sendmail("bench@bench.local", [a.to], f"Subject: latency {i}\r\n\r\nping\r\n")
    t250 = time.perf_counter()
    t.join()
    assert box["page"]["messages"], "long-poll ended without the message"
    cursor = box["page"]["next_cursor"]
    delays.append((box["t"] - t250) * 1000)
smtp.quit()
delays.sort()
p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
print(f"250 -> long-poll answer over {len(delays)} messages: median {statistics.median(delays):.2f} ms, "
      f"p99 {p99:.2f} ms, max {delays[-1]:.2f} ms")
