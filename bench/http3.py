"""HTTP/3 against HTTP/2 through each proxy (issue 21), for bench/measure.py.

Measured on the pipelit-h3 site of each edge (molecule/bench/vars/sites.yml:
port 8443, HTTP/3 on where the edge's Debian serves it), the same site, the
same certificate (self_signed, ECDSA P-256), the asyncio stand-in and the
same client library (libcurl: nghttp2 for HTTP/2, ngtcp2 and nghttp3 for
HTTP/3) over both protocols, so each ratio h3/h2 is the protocol's alone:

- small requests on a few long-lived connections: curl --parallel (one
  connection per curl process, its transfers multiplexed on it), requests/s
  and the proxy's CPU per request (measure.py's cpu_seconds, /proc on the
  edge);
- new connections: bench/new_connections.py (pycurl), each connection a
  full handshake and one request, connections/s and the proxy's CPU per
  connection;
- a lossy link: time to first byte of one request on a new connection (curl,
  `%{time_starttransfer}`: connection, handshake, request and the first byte
  of the answer), HTTP/2 and HTTP/3 samples alternating, over the bench's
  network as it is and through bench/lossy_link.py (delay and random loss of
  the client's packets; this kernel has no netem).

Debian 13's h2load (nghttp2 1.64) would be the obvious load generator, but
it is built without QUIC (`--alpn-list=h3` fails every request), so libcurl
drives both protocols. Needs Debian 13 on both ends: nginx 1.22 (Debian 12)
has no HTTP/3 module and Debian 12's curl (7.88) no QUIC. On a Debian 12
stage the section says so and measures nothing, which is no problem for the
smoke run.
"""

import json
import re
import statistics
import subprocess
import time

NGINX, CADDY, CLIENT = "edge-nginx-bench", "edge-caddy-bench", "client-bench"
EDGES = ((NGINX, "nginx"), (CADDY, "caddy"))
PORT = 8443
PROTOCOLS = ("h2", "h3")
# The lossy link (bench/lossy_link.py, on the client's packets only): a
# mobile or long-distance path: 50 ms added to each round trip, 2 % of the
# client's packets lost (its SYNs and QUIC Initials included).
LINK = {"delay_ms": 50, "loss": 0.02}
LINK_UNIT = "bench-lossy-link"


def host(proxy):
    return f"h3-{proxy}.bench.test"


def availability(sh):
    """Why HTTP/3 cannot be measured on this stage (empty: it can)."""
    reasons = []
    if "with-http_v3_module" not in sh(NGINX, "nginx -V 2>&1", check=False):
        reasons.append(f"the nginx edge's {sh(NGINX, 'nginx -v 2>&1', check=False).strip()} has no HTTP/3 module")
    curl = sh(CLIENT, "curl -V", check=False)
    if "HTTP3" not in curl:
        reasons.append(f"the client's {' '.join(curl.split()[:2]) or 'curl'} has no HTTP/3")
    pycurl = sh(CLIENT, "python3 -c 'import pycurl; print(pycurl.version)' 2>&1", check=False)
    if "ngtcp2" not in pycurl:
        reasons.append(f"the client's pycurl ({pycurl.strip()[:60]}) has no QUIC")
    return reasons


def proxy_cpu(cpu_seconds, edge, run):
    before = cpu_seconds(edge).get("proxy", 0)
    result = run()
    result["proxy_cpu_s"] = cpu_seconds(edge).get("proxy", 0) - before
    return result


def curl_parallel(sh, cfg, proxy, protocol):
    """--h3-connections curl processes at once, each one connection with
    --h3-streams transfers in flight (curl --parallel multiplexes them on
    one connection), --h3-requests each: the wall time and what came back."""
    flag = "--http2" if protocol == "h2" else "--http3-only"
    url = f"https://{host(proxy)}:{PORT}/health"
    config = f'url = "{url}"\noutput = "/dev/null"\n' * cfg["h3_requests"]
    subprocess.run(["docker", "exec", "-i", CLIENT, "sh", "-c", "cat > /tmp/h3-small.cfg"], input=config, text=True, check=True)
    # A connection nginx stops answering stalls the transfers queued behind
    # it, which curl's -m does not end: each curl gets a time limit of its own.
    limit = max(30, cfg["h3_requests"] // 50)
    out = sh(
        CLIENT,
        "rm -f /tmp/h3-small.out.*; start=$(date +%s%N); "
        f"for c in $(seq {cfg['h3_connections']}); do timeout -s KILL {limit} curl -sk -m 10 {flag} --parallel --parallel-max {cfg['h3_streams']} "
        "-K /tmp/h3-small.cfg -w '%{http_code} %{http_version} %{num_connects}\\n' > /tmp/h3-small.out.$c & done; wait; "
        'echo "NANOSECONDS $(( $(date +%s%N) - start ))"; cat /tmp/h3-small.out.* | sort | uniq -c',
        timeout=600,
    )
    seconds = int(re.search(r"NANOSECONDS (\d+)", out).group(1)) / 1e9
    ok = failed = connects = 0
    for count, status, version, new in re.findall(r"^\s*(\d+) (\d+) (\S+) (\d+)$", out, re.M):
        connects += int(count) * int(new)
        if status.startswith("2") and version == protocol[1]:
            ok += int(count)
        else:
            failed += int(count)
    # Transfers a killed curl never reported are failed too.
    failed = cfg["h3_connections"] * cfg["h3_requests"] - ok
    return {"seconds": seconds, "succeeded": ok, "failed": failed, "connections": connects, "rps": ok / seconds}


def small_requests(cfg, sh, cpu_seconds, log, problems):
    rows = []
    for edge, proxy in EDGES:
        row = {"proxy": proxy}
        for protocol in PROTOCOLS:
            log(f"HTTP/3 section: small requests through {proxy} over {protocol}")
            try:
                result = proxy_cpu(cpu_seconds, edge, lambda p=protocol, x=proxy: curl_parallel(sh, cfg, x, p))
                # Failed requests are a result (the table shows them: nginx
                # 1.26.3 leaves a few HTTP/3 requests unanswered, README);
                # mostly failures mean the measurement could not be made.
                if result["succeeded"] <= result["failed"]:
                    problems.append(
                        f"HTTP/3 section, small requests through {proxy} over {protocol}: "
                        f"{result['succeeded']} succeeded, {result['failed']} failed or over another protocol"
                    )
                    continue
                row[protocol] = {
                    "rps": round(result["rps"]),
                    "requests": result["succeeded"],
                    "failed": result["failed"],
                    "connections": result["connections"],
                    "proxy_cpu_us_per_request": round(result["proxy_cpu_s"] * 1e6 / result["succeeded"], 1),
                }
            except (RuntimeError, AttributeError, ValueError, subprocess.TimeoutExpired) as exc:
                problems.append(f"HTTP/3 section, small requests through {proxy} over {protocol}: {exc}")
        if "h2" in row and "h3" in row:
            row["rps_ratio"] = round(row["h3"]["rps"] / row["h2"]["rps"], 3)
            row["cpu_ratio"] = round(row["h3"]["proxy_cpu_us_per_request"] / max(0.1, row["h2"]["proxy_cpu_us_per_request"]), 3)
        rows.append(row)
    return rows


def new_connections(cfg, sh, cpu_seconds, log, problems):
    """bench/new_connections.py: a fixed number of fresh connections, a few
    in flight at a time, each a full handshake and one request."""
    rows = []
    count, concurrency = cfg["h3_new_connections"], cfg["h3_new_concurrency"]
    for edge, proxy in EDGES:
        row = {"proxy": proxy, "connections": count, "concurrency": concurrency}
        for protocol in PROTOCOLS:
            log(f"HTTP/3 section: {count} new connections to {proxy} over {protocol}")
            command = (
                f"python3 /usr/local/bin/new_connections.py https://{host(proxy)}:{PORT}/health "
                f"--protocol {protocol} --count {count} --concurrency {concurrency}"
            )
            try:
                result = proxy_cpu(cpu_seconds, edge, lambda c=command: json.loads(sh(CLIENT, c, timeout=600)))
                # libcurl's numbers for the version: 3 is HTTP/2, 30 HTTP/3.
                if not result["done"] or result["failed"] or set(result["versions"]) != {"3" if protocol == "h2" else "30"}:
                    problems.append(f"HTTP/3 section, new connections to {proxy} over {protocol}: {result}")
                    continue
                row[protocol] = {
                    "per_second": round(result["per_second"]),
                    "proxy_cpu_us_per_connection": round(result["proxy_cpu_s"] * 1e6 / result["done"]),
                }
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                problems.append(f"HTTP/3 section, new connections to {proxy} over {protocol}: {exc}")
        if "h2" in row and "h3" in row:
            row["rate_ratio"] = round(row["h3"]["per_second"] / row["h2"]["per_second"], 3)
            row["cpu_ratio"] = round(row["h3"]["proxy_cpu_us_per_connection"] / max(1, row["h2"]["proxy_cpu_us_per_connection"]), 3)
        rows.append(row)
    return rows


def ttfb_samples(sh, proxy, samples):
    """Alternating HTTP/2 and HTTP/3 fetches, each on a new connection:
    {protocol: [seconds, ...]} of those that came back over that protocol,
    and how many did not."""
    url = f"https://{host(proxy)}:{PORT}/health"
    out = sh(
        CLIENT,
        f"for i in $(seq {samples}); do for p in h2 h3; do "
        "if [ $p = h2 ]; then flag=--http2; else flag=--http3-only; fi; "
        f"echo $p $(curl -sk -o /dev/null --max-time 10 -w '%{{http_version}} %{{http_code}} %{{time_starttransfer}}' $flag {url}); "
        "done; done",
        timeout=samples * 2 * 12 + 60,
        check=False,
    )
    times, failed = {"h2": [], "h3": []}, {"h2": 0, "h3": 0}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1] == fields[0][1] and fields[2].startswith("2"):
            times[fields[0]].append(float(fields[3]))
        elif fields and fields[0] in failed:
            failed[fields[0]] += 1
    return times, failed


def summary(values):
    ordered = sorted(values)
    if not ordered:
        return None
    return {
        "samples": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def link_up(sh, peers):
    sh(CLIENT, f"systemctl reset-failed {LINK_UNIT} 2>/dev/null; true", check=False)
    sh(
        CLIENT,
        f"systemd-run --quiet --unit {LINK_UNIT} --collect python3 /usr/local/bin/lossy_link.py {' '.join(peers)} "
        f"--delay-ms {LINK['delay_ms']} --loss {LINK['loss']}",
    )
    for _ in range(50):
        if all("benchlossy" in sh(CLIENT, f"ip -o route get {peer}", check=False) for peer in peers):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the lossy link did not come up: {sh(CLIENT, f'journalctl -u {LINK_UNIT} --no-pager | tail -5', check=False)}")


def link_down(sh, peers, problems):
    """Always: stop the link, and make sure no route goes through it any more."""
    sh(CLIENT, f"systemctl stop {LINK_UNIT}", check=False)
    sh(CLIENT, "ip rule del fwmark 0x6c lookup 107; ip route flush table 107; ip link del benchlossy", check=False)
    left = [peer for peer in peers if "benchlossy" in sh(CLIENT, f"ip -o route get {peer}", check=False)]
    if left:
        problems.append(f"HTTP/3 section: the lossy link's routes are still there for {left}")
    counts = re.findall(r"STOPPED passed (\d+) dropped (\d+)", sh(CLIENT, f"journalctl -u {LINK_UNIT} --no-pager -n 20", check=False))
    return {"passed": int(counts[-1][0]), "dropped": int(counts[-1][1])} if counts else None


def lossy_link(cfg, sh, log, problems):
    samples = cfg["h3_ttfb_samples"]
    result = {"link": dict(LINK), "samples_each": samples, "rows": []}
    peers = sorted({sh(CLIENT, f"getent hosts {host(proxy)} | cut -d' ' -f1").strip() for _, proxy in EDGES})
    for condition in ("as is", "lossy"):
        try:
            if condition == "lossy":
                link_up(sh, peers)
            for _, proxy in EDGES:
                log(f"HTTP/3 section: time to first byte through {proxy}, link {condition}, {samples} samples each")
                times, failed = ttfb_samples(sh, proxy, samples)
                row = {"proxy": proxy, "link": condition, "failed": failed}
                for protocol in PROTOCOLS:
                    row[protocol] = summary(times[protocol])
                    # As above: unanswered fetches are counted in the table;
                    # fewer than half answered means no measurement.
                    if len(times[protocol]) < samples * 0.5:
                        problems.append(
                            f"HTTP/3 section, time to first byte through {proxy} over {protocol} ({condition}): "
                            f"{len(times[protocol])} of {samples} fetches answered over {protocol}"
                        )
                if row["h2"] and row["h3"]:
                    row["median_ratio"] = round(row["h3"]["median_ms"] / row["h2"]["median_ms"], 3)
                    row["p90_ratio"] = round(row["h3"]["p90_ms"] / row["h2"]["p90_ms"], 3)
                result["rows"].append(row)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            problems.append(f"HTTP/3 section, lossy link ({condition}): {exc}")
        finally:
            if condition == "lossy":
                result["link_packets"] = link_down(sh, peers, problems)
    return result


def measure(cfg, sh, cpu_seconds, log, problems):
    reasons = availability(sh)
    if reasons:
        log("HTTP/3 section: not measured: " + "; ".join(reasons))
        return {"measured": False, "reasons": reasons}
    return {
        "measured": True,
        "curl": sh(CLIENT, "curl --version | head -1", check=False).strip(),
        "small_requests": small_requests(cfg, sh, cpu_seconds, log, problems),
        "new_connections": new_connections(cfg, sh, cpu_seconds, log, problems),
        "lossy_link": lossy_link(cfg, sh, log, problems),
    }


def cell(row, protocol, key):
    return str(row[protocol][key]) if row.get(protocol) else "failed"


def markdown(data, cfg):
    lines = ["### HTTP/3 against HTTP/2 (same site, port 8443, both proxies)", ""]
    add = lines.append
    if not data or not data.get("measured"):
        add(
            "Not measured on this stage: "
            + "; ".join((data or {}).get("reasons", ["no data"]))
            + ". It needs Debian 13 (`PIPELIT_EDGE_DISTRO=debian13`)."
        )
        add("")
        return lines
    add(
        f"Client: {data['curl']} (and pycurl on it). The pipelit-h3 site of each edge (self_signed ECDSA P-256, "
        "the asyncio stand-in), `/health`; each ratio is h3/h2 from runs made one after the other."
    )
    add("")
    add(
        f"Small requests: {cfg['h3_connections']} curl processes at once, each one connection with "
        f"{cfg['h3_streams']} requests in flight (`--parallel`), {cfg['h3_requests']} requests each."
    )
    add("")
    add(
        "| proxy | h2 req/s | h3 req/s | h3/h2 req/s | h2 proxy CPU µs/req | h3 proxy CPU µs/req | h3/h2 CPU per request "
        "| failed h2 / h3 (10 s timeout) |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["small_requests"]:
        add(
            f"| {row['proxy']} | {cell(row, 'h2', 'rps')} | {cell(row, 'h3', 'rps')} | {row.get('rps_ratio', '')} | "
            f"{cell(row, 'h2', 'proxy_cpu_us_per_request')} | {cell(row, 'h3', 'proxy_cpu_us_per_request')} | {row.get('cpu_ratio', '')} | "
            f"{cell(row, 'h2', 'failed')} / {cell(row, 'h3', 'failed')} |"
        )
    add("")
    add(
        f"New connections: bench/new_connections.py, {cfg['h3_new_connections']} connections of one request each, "
        f"{cfg['h3_new_concurrency']} in flight; full handshake (no resumption), the request, the close."
    )
    add("")
    add("| proxy | h2 connections/s | h3 connections/s | h3/h2 | h2 proxy CPU µs/connection | h3 proxy CPU µs/connection | h3/h2 CPU |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["new_connections"]:
        add(
            f"| {row['proxy']} | {cell(row, 'h2', 'per_second')} | {cell(row, 'h3', 'per_second')} | {row.get('rate_ratio', '')} | "
            f"{cell(row, 'h2', 'proxy_cpu_us_per_connection')} | {cell(row, 'h3', 'proxy_cpu_us_per_connection')} | {row.get('cpu_ratio', '')} |"
        )
    add("")
    lossy = data["lossy_link"]
    packets = lossy.get("link_packets")
    dropped = f"; it passed {packets['passed']} packets and dropped {packets['dropped']}" if packets else ""
    add(
        f"Time to first byte of one request on a new connection (curl `%{{time_starttransfer}}`, `--http2` and "
        f"`--http3-only` alternating, {lossy['samples_each']} each): over the bench network as it is, then through "
        f"the lossy link (bench/lossy_link.py on the client: {lossy['link']['delay_ms']} ms added to each round trip, "
        f"{lossy['link']['loss']:.0%} of the client's packets dropped{dropped})."
    )
    add("")
    add(
        "| proxy | link | h2 median ms | h2 p90 ms | h3 median ms | h3 p90 ms | h3/h2 median | h3/h2 p90 "
        "| h2 max / h3 max ms | unanswered h2 / h3 (10 s timeout) |"
    )
    add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in lossy["rows"]:
        add(
            f"| {row['proxy']} | {row['link']} | {cell(row, 'h2', 'median_ms')} | {cell(row, 'h2', 'p90_ms')} | "
            f"{cell(row, 'h3', 'median_ms')} | {cell(row, 'h3', 'p90_ms')} | {row.get('median_ratio', '')} | "
            f"{row.get('p90_ratio', '')} | {cell(row, 'h2', 'max_ms')} / {cell(row, 'h3', 'max_ms')} | "
            f"{row['failed']['h2']} / {row['failed']['h3']} |"
        )
    add("")
    return lines
