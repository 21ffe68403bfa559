"""Submits N messages ("Subject: dup <i>") over 8 SMTP connections to 127.0.0.1:PORT and writes
down each one acknowledged, for bench/duplicates.sh and bench/duplicates-postfix.sh:

    python3 bench/dup_submit.py PORT N ACKED_FILE

The server is killed while this runs: what was acknowledged before that is in ACKED_FILE."""
import smtplib, sys, threading

port, n, acked = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
out = open(acked, "a")


def send(k):
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            for i in range(k, n, 8):
                s.sendmail("bench@bench.local", ["to@example.test"],
                           f"From: bench@bench.local\r\nTo: to@example.test\r\nSubject: dup {i}\r\n\r\nbody {i}\r\n")
                with lock:
                    out.write(f"Subject: dup {i}\n"); out.flush()
    except Exception:
        pass  # the server was killed: what was acknowledged is written down


ts = [threading.Thread(target=send, args=(k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
