#!/usr/bin/env python3
"""New connections per second over HTTP/2 or HTTP/3: each one a full handshake, one request, closed.

Runs in the bench's client container (Debian 13: python3-pycurl on a
libcurl with nghttp2, ngtcp2 and nghttp3). h2load would do, but Debian 13's
is built without QUIC; one curl process per connection would measure curl's
start-up. This keeps --concurrency transfers in flight in one libcurl multi
handle, each on a connection of its own (FRESH_CONNECT, FORBID_REUSE; no TLS
session is offered back, so no resumption), until --count have been made;
prints one JSON line: done, failed, seconds, per second, the HTTP versions
seen.

    new_connections.py URL --protocol h2|h3 [--count 1000] [--concurrency 8]
"""

import argparse
import collections
import json
import time

import pycurl

VERSIONS = {"h2": pycurl.CURL_HTTP_VERSION_2TLS, "h3": pycurl.CURL_HTTP_VERSION_3ONLY}


def transfer(url, protocol):
    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.HTTP_VERSION, VERSIONS[protocol])
    handle.setopt(pycurl.FRESH_CONNECT, 1)
    handle.setopt(pycurl.FORBID_REUSE, 1)
    handle.setopt(pycurl.SSL_SESSIONID_CACHE, 0)
    handle.setopt(pycurl.SSL_VERIFYPEER, 0)  # self-signed bench certificates
    handle.setopt(pycurl.SSL_VERIFYHOST, 0)
    handle.setopt(pycurl.TIMEOUT, 20)
    handle.setopt(pycurl.WRITEFUNCTION, len)
    return handle


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--protocol", choices=sorted(VERSIONS), required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    multi = pycurl.CurlMulti()
    started, done, failed, versions, errors = 0, 0, 0, collections.Counter(), collections.Counter()
    begin = time.monotonic()
    while done + failed < args.count:
        while started < args.count and started - done - failed < args.concurrency:
            multi.add_handle(transfer(args.url, args.protocol))
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        _, ok, bad = multi.info_read()
        for handle in ok:
            status, version = handle.getinfo(pycurl.RESPONSE_CODE), handle.getinfo(pycurl.INFO_HTTP_VERSION)
            versions[str(version)] += 1
            if 200 <= status < 300:
                done += 1
            else:
                failed += 1
                errors[f"status {status}"] += 1
            multi.remove_handle(handle)
            handle.close()
        for handle, _, message in bad:
            failed += 1
            errors[message[:80]] += 1
            multi.remove_handle(handle)
            handle.close()
        multi.select(0.05)
    seconds = time.monotonic() - begin
    print(
        json.dumps(
            {
                "done": done,
                "failed": failed,
                "seconds": round(seconds, 3),
                "per_second": round(done / seconds, 1),
                # libcurl's CURL_HTTP_VERSION_* numbers: 3 is HTTP/2, 30 HTTP/3.
                "versions": dict(versions),
                "errors": dict(errors.most_common(3)),
            }
        )
    )


if __name__ == "__main__":
    main()
