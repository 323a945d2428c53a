#!/usr/bin/env python3
"""Measure the edges of the bench stage (molecule/bench) and report side by side.

Called by bench/run once the stage is converged; it drives the containers
with `docker exec` and needs nothing but the standard library on the host.
Every ratio comes from runs made here, in one go, with the same client and
settings. Writes RESULTS.json and RESULTS.md into --out and prints the
Markdown; exits 1 if any measurement could not be made (the smoke run's
job), never because a target was missed.

    measure.py --out DIR [--smoke] [--ansible NAME=SECONDS:LOGFILE ...]
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

import http3

NGINX, CADDY, CLIENT = "edge-nginx-bench", "edge-caddy-bench", "client-bench"
PROXY_PROCESS = {NGINX: "nginx", CADDY: "caddy"}
CLOCK_TICKS = 100  # USER_HZ on Linux

# Workloads: (stand-in, path). asyncio /health is the cheapest backend there
# is, so the proxy's own cost shows in full; FastAPI /health is Pipelit's
# framework and server; asyncio /delay/20 is an app waiting 20 ms on its
# database, spending no CPU.
FULL = {
    "duration": 10,
    "connections": 64,
    "threads": 2,
    "workloads": [("asyncio", "/health"), ("fastapi", "/health"), ("asyncio", "/delay/20")],
    "ws_count": 10000,
    "ws_processes": 4,
    "ws_samples": 400,
    "tls_seconds": 8,
    "tls_processes": 4,
    "guard_rounds": 3,
    # The HTTP/3 section (bench/http3.py): small requests on h3_connections
    # connections with h3_streams in flight on each, h3_requests per
    # connection; h3_new_connections fresh connections, h3_new_concurrency at
    # a time; curl fetches per protocol and link for the time to first byte.
    "h3_connections": 4,
    "h3_streams": 16,
    "h3_requests": 4000,
    "h3_new_connections": 2000,
    "h3_new_concurrency": 8,
    "h3_ttfb_samples": 100,
}
SMOKE = {
    "duration": 2,
    "connections": 8,
    "threads": 2,
    "workloads": [("asyncio", "/health"), ("fastapi", "/health")],
    "ws_count": 200,
    "ws_processes": 2,
    "ws_samples": 40,
    "tls_seconds": 2,
    "tls_processes": 2,
    "guard_rounds": 1,
    "h3_connections": 2,
    "h3_streams": 4,
    "h3_requests": 200,
    "h3_new_connections": 100,
    "h3_new_concurrency": 4,
    "h3_ttfb_samples": 10,
}

problems = []  # measurements that could not be made
smoke_run = False


def log(message):
    print(f"[measure {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sh(container, command, timeout=600, check=True):
    done = subprocess.run(["docker", "exec", container, "bash", "-c", command], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{container}: {command!r} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def cpu_seconds(container):
    """CPU seconds used so far by the proxy, the backend and everything else."""
    totals = {}
    for line in sh(container, "cat /proc/[0-9]*/stat 2>/dev/null", check=False).splitlines():
        head, _, rest = line.rpartition(")")
        comm = head.partition("(")[2]
        fields = rest.split()
        if len(fields) < 13:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        kind = "proxy" if comm in ("nginx", "caddy") else "backend" if comm.startswith("python") else "other"
        totals[kind] = totals.get(kind, 0) + ticks / CLOCK_TICKS
    return totals


def time_wait(container):
    out = sh(container, "ss -Htan state time-wait | wc -l; ss -Htan state time-wait '( sport = :8000 or dport = :8000 )' | wc -l")
    total, upstream = (int(x) for x in out.split())
    return total, upstream


def other_containers():
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    return sum(1 for name in names.split() if not name.endswith("-bench"))


def wait_for_time_wait_to_clear(container, limit=100, seconds=65):
    """Wait (at most the 60 s a socket stays in TIME_WAIT) for earlier runs' to go."""
    deadline = time.monotonic() + seconds
    while time_wait(container)[0] > limit and time.monotonic() < deadline:
        time.sleep(2)


def proxy_rss_kib(container):
    out = sh(container, f"ps -C {PROXY_PROCESS[container]} -o rss=", check=False)
    return sum(int(x) for x in out.split())


def to_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url, cfg):
    out = sh(
        CLIENT,
        f"wrk --latency -t{cfg['threads']} -c{cfg['connections']} -d{cfg['duration']}s --timeout 10s {url}",
        timeout=cfg["duration"] + 60,
    )
    try:
        result = {
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": to_ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),
            "p99_ms": to_ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),
        }
    except (AttributeError, ValueError) as exc:
        raise RuntimeError(f"cannot read wrk's output ({exc}):\n{out}") from exc
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    result["socket_errors"] = sum(int(x) for x in errors.groups()) if errors else 0
    return result


def use_backend(name):
    """Run stand-in NAME on 127.0.0.1:8000 of both edges (the other stops)."""
    for edge in (NGINX, CADDY):
        sh(
            edge,
            f"systemctl start bench-backend-{name} && for i in $(seq 100); do "
            "python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=2)\" 2>/dev/null && exit 0; sleep 0.1; done; exit 1",
        )


def throughput(cfg):
    # Each edge's proxies after a direct run against the same edge's backend;
    # the guide's config last on its edge, so its TIME_WAIT sockets do not
    # land in our site's count.
    # Ports always written out: the client image has no /etc/services.
    targets = [
        ("direct", NGINX, "http://nginx.bench.test:8000"),
        ("nginx", NGINX, "https://nginx.bench.test:443"),
        ("guide", NGINX, "https://nginx.bench.test:8444"),
        ("direct", CADDY, "http://caddy.bench.test:8000"),
        ("caddy", CADDY, "https://caddy.bench.test:443"),
    ]
    rows = []
    for backend, path in cfg["workloads"]:
        try:
            use_backend(backend)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            problems.append(f"stand-in {backend}: {exc}")
            continue
        workload = f"{backend} {path}"
        for name, edge, base in targets:
            label = f"{name} ({PROXY_PROCESS[edge]} edge)" if name == "direct" else name
            log(f"throughput {label} {workload}")
            try:
                if not smoke_run:
                    wait_for_time_wait_to_clear(edge)
                tw_before = time_wait(edge)
                others = other_containers()
                cpu_before = cpu_seconds(edge)
                result = wrk(base + path, cfg)
                cpu_after = cpu_seconds(edge)
                result["tw_before"], result["tw_upstream_before"] = tw_before
                # Someone else's containers on the same cores skew a run: say so.
                result["other_containers"] = max(others, other_containers())
                result["tw_after"], result["tw_upstream_after"] = time_wait(edge)
                result["cpu_us_per_request"] = {
                    k: round((cpu_after.get(k, 0) - cpu_before.get(k, 0)) * 1e6 / max(1, result["requests"]), 1)
                    for k in ("proxy", "backend")
                }
                if result["requests"] == 0 or result["non_2xx"] or result["socket_errors"]:
                    problems.append(
                        f"throughput {label} {workload}: {result['requests']} requests, "
                        f"{result['non_2xx']} non-2xx, {result['socket_errors']} socket errors"
                    )
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                problems.append(f"throughput {label} {workload}: {exc}")
                result = None
            rows.append({"workload": workload, "target": name, "edge": PROXY_PROCESS[edge], "url": base + path, "result": result})
    # Ratios against the direct run on the same edge and workload.
    for row in rows:
        direct = next(
            (r["result"] for r in rows if r["target"] == "direct" and r["edge"] == row["edge"] and r["workload"] == row["workload"]), None
        )
        if row["result"] and direct and direct["rps"]:
            row["result"]["of_direct"] = round(row["result"]["rps"] / direct["rps"], 3)
    return rows


def guard_cost(cfg):
    """What the pipelit profile's guards (path_guard's regular expression on
    the raw URI, denied_paths' locations or matchers) cost per request: the
    same proxy, backend and certificate type, through the guarded site and an
    unguarded twin (molecule/bench/vars/sites.yml), in alternating runs, the
    median of each."""
    rows = []
    try:
        use_backend("asyncio")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        problems.append(f"guard cost: stand-in asyncio: {exc}")
        return rows
    for edge in (NGINX, CADDY):
        name = PROXY_PROCESS[edge]
        runs = {"guarded": [], "unguarded": []}
        for _ in range(cfg["guard_rounds"]):
            for kind, host in (("guarded", f"{name}.bench.test"), ("unguarded", f"unguarded-{name}.bench.test")):
                log(f"guard cost {name} {kind}")
                try:
                    # A cost is read from clean runs only. On a loaded machine
                    # a run now and then gets a few errors (seen 2026-12-05:
                    # 115 non-2xx of 41,786 through nginx, load average 4.8,
                    # another scenario on the same two cores): that run is
                    # made once more; errors twice in a row are a problem.
                    for attempt in (1, 2):
                        cpu_before = cpu_seconds(edge)
                        result = wrk(f"https://{host}:443/health", cfg)
                        cpu_after = cpu_seconds(edge)
                        clean = result["requests"] and not result["non_2xx"] and not result["socket_errors"]
                        if clean or attempt == 2:
                            break
                        log(f"guard cost {name} {kind}: {result['non_2xx']} non-2xx, {result['socket_errors']} socket errors; once more")
                    if not clean:
                        raise RuntimeError(
                            f"{result['requests']} requests, {result['non_2xx']} non-2xx, {result['socket_errors']} socket errors"
                        )
                    result["proxy_cpu_us"] = (cpu_after.get("proxy", 0) - cpu_before.get("proxy", 0)) * 1e6 / result["requests"]
                    runs[kind].append(result)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    problems.append(f"guard cost {name} {kind}: {exc}")
        if not (runs["guarded"] and runs["unguarded"]):
            continue
        guarded = {key: statistics.median(r[key] for r in runs["guarded"]) for key in ("rps", "proxy_cpu_us")}
        unguarded = {key: statistics.median(r[key] for r in runs["unguarded"]) for key in ("rps", "proxy_cpu_us")}
        rows.append(
            {
                "proxy": name,
                "runs_each": len(runs["guarded"]),
                "guarded_rps": round(guarded["rps"]),
                "unguarded_rps": round(unguarded["rps"]),
                "rps_ratio": round(guarded["rps"] / unguarded["rps"], 3),
                "guarded_proxy_cpu_us": round(guarded["proxy_cpu_us"], 1),
                "unguarded_proxy_cpu_us": round(unguarded["proxy_cpu_us"], 1),
                "guard_cpu_us": round(guarded["proxy_cpu_us"] - unguarded["proxy_cpu_us"], 1),
            }
        )
    return rows


def websockets(cfg):
    rows = []
    use_backend("asyncio")
    for edge, host in ((NGINX, "nginx.bench.test"), (CADDY, "caddy.bench.test")):
        name = PROXY_PROCESS[edge]
        url = f"wss://{host}:443/ws/bench?token=bench"
        go = f"/tmp/ws-go-{name}"
        log(f"websockets: {cfg['ws_count']} through {name}")
        row = {"proxy": name, "url": url, "target": cfg["ws_count"]}
        clients = []
        try:
            sh(CLIENT, f"rm -f {go}")
            rss_before = proxy_rss_kib(edge)
            share = [cfg["ws_count"] // cfg["ws_processes"]] * cfg["ws_processes"]
            share[0] += cfg["ws_count"] - sum(share)
            samples = max(1, cfg["ws_samples"] // cfg["ws_processes"])
            clients = [
                subprocess.Popen(
                    [
                        "docker",
                        "exec",
                        CLIENT,
                        "python3",
                        "/usr/local/bin/ws_hold.py",
                        url,
                        "--count",
                        str(n),
                        "--samples",
                        str(samples),
                        "--go",
                        go,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in share
            ]
            started = time.monotonic()
            opened = failed = 0
            for client in clients:
                line = client.stdout.readline().split()
                if not line or line[0] != "OPEN":
                    raise RuntimeError(f"a WebSocket client stopped before opening: {line}")
                opened, failed = opened + int(line[1]), failed + int(line[2])
            row["open_seconds"] = round(time.monotonic() - started, 1)
            time.sleep(2)  # let the proxy settle (Go's GC, nginx's buffers)
            rss_after = proxy_rss_kib(edge)
            row["established_on_edge"] = int(sh(edge, "ss -Htn state established '( sport = :443 )' | wc -l"))
            sh(CLIENT, f"touch {go}")
            reports = [json.loads(client.stdout.readline()) for client in clients]
            for client in clients:
                client.wait(timeout=60)
            echo = sorted(ms for r in reports for ms in r["echo_ms"])
            row.update(
                {
                    "opened": opened,
                    "failed": failed,
                    "errors": sorted({e for r in reports for e in r["errors"]})[:5],
                    "still_open": sum(r["still_open"] for r in reports),
                    "rss_before_mib": round(rss_before / 1024, 1),
                    "rss_after_mib": round(rss_after / 1024, 1),
                    "bytes_per_connection": round((rss_after - rss_before) * 1024 / max(1, opened)),
                    "echo_samples": len(echo),
                    "echo_errors": sum(r["echo_errors"] for r in reports),
                    "echo_p50_ms": round(statistics.median(echo), 2) if echo else None,
                    "echo_p99_ms": round(echo[min(len(echo) - 1, int(len(echo) * 0.99))], 2) if echo else None,
                }
            )
            # Fewer than asked is a result (the table shows it), unless the
            # smoke run's handful could not be held: then something broke.
            if (smoke_run and opened < cfg["ws_count"]) or not opened or row["echo_errors"] or not echo:
                problems.append(
                    f"websockets {name}: opened {opened} of {cfg['ws_count']}, {row['echo_errors']} echo errors, errors: {row['errors']}"
                )
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            problems.append(f"websockets {name}: {exc}")
            for client in clients:
                client.kill()
        rows.append(row)
        # The clients exited without closing handshakes: wait until the proxy
        # has let go of the sockets before the next measurement.
        for _ in range(60):
            if int(sh(edge, "ss -Htn state established '( dport = :8000 )' | wc -l")) < 10:
                break
            time.sleep(1)
    return rows


def handshakes(cfg):
    rows = []
    for edge, proxy in ((NGINX, "nginx"), (CADDY, "caddy")):
        for key, host, port in (("ECDSA P-256 (default)", f"{proxy}.bench.test", 443), ("RSA 2048", f"rsa-{proxy}.bench.test", 9443)):
            log(f"TLS handshakes: {proxy} {key}")
            row = {"proxy": proxy, "key": key, "host": host, "port": port}
            try:
                cpu_before = cpu_seconds(edge)
                out = sh(
                    CLIENT,
                    f"python3 /usr/local/bin/tls_handshakes.py {host} {port} "
                    f"--processes {cfg['tls_processes']} --seconds {cfg['tls_seconds']}",
                    timeout=cfg["tls_seconds"] + 120,
                )
                cpu_after = cpu_seconds(edge)
                row.update(json.loads(out))
                row["proxy_cpu_us_per_handshake"] = round(
                    (cpu_after.get("proxy", 0) - cpu_before.get("proxy", 0)) * 1e6 / max(1, row["handshakes"])
                )
                if not row["handshakes"] or row["errors"]:
                    problems.append(f"TLS {proxy} {key}: {row['handshakes']} handshakes, {row['errors']} errors")
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                problems.append(f"TLS {proxy} {key}: {exc}")
            rows.append(row)
    return rows


RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
    r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)",
    re.M,
)


def ansible_runs(specs):
    rows = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        seconds, _, logfile = rest.partition(":")
        row = {"run": name, "seconds": float(seconds), "hosts": {}}
        try:
            with open(logfile, encoding="utf-8") as handle:
                text = re.sub(r"\x1b\[[0-9;]*m", "", handle.read())
            for host, ok, changed, unreachable, failed, skipped, _, _ in RECAP.findall(text):
                row["hosts"][host] = {
                    "tasks": int(ok) + int(failed) + int(skipped) + int(unreachable),
                    "ok": int(ok),
                    "changed": int(changed),
                    "failed": int(failed),
                    "skipped": int(skipped),
                }
            # profile_tasks' summary: "role : task name ------ 12.34s".
            row["slowest_tasks"] = [
                {"task": task.strip(), "seconds": float(secs)} for task, secs in re.findall(r"^(\S.*?) -{3,} (\d+\.\d+)s$", text, re.M)
            ][:6]
            if name.startswith("unchanged") and any(h["changed"] for h in row["hosts"].values()):
                problems.append(f"ansible {name}: a second run changed something (not idempotent)")
            if not row["hosts"] or any(h["failed"] for h in row["hosts"].values()):
                problems.append(f"ansible {name}: no recap or failed tasks in {logfile}")
        except OSError as exc:
            problems.append(f"ansible {name}: {exc}")
        rows.append(row)
    return rows


def machine():
    def first_line(command, container=None):
        try:
            out = (
                sh(container, command, check=False)
                if container
                else subprocess.run(["bash", "-c", command], capture_output=True, text=True).stdout
            )
            return out.strip().splitlines()[0] if out.strip() else "?"
        except (IndexError, subprocess.SubprocessError):
            return "?"

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": first_line("nproc"),
        "cpu": first_line("sed -n 's/^model name\\s*: //p' /proc/cpuinfo"),
        "memory": first_line("free -h | awk '/^Mem:/ {print $2}'"),
        "kernel": first_line("uname -r"),
        "loadavg_at_start": first_line("cut -d' ' -f1-3 /proc/loadavg"),
        "other_containers": first_line("docker ps --format '{{.Names}}' | grep -v -- '-bench$' | wc -l"),
        "edge_distro": first_line(". /etc/os-release; echo $PRETTY_NAME", NGINX),
        "nginx": first_line("nginx -v 2>&1", NGINX),
        "caddy": first_line("caddy version", CADDY),
        "openssl_edge": first_line("openssl version", NGINX),
        "wrk": first_line("wrk -v 2>&1 | head -1", CLIENT),
        "python_client": first_line(
            "python3 -c 'import sys, websockets; print(sys.version.split()[0], \"websockets\", websockets.__version__)'", CLIENT
        ),
        "ansible": first_line("ansible --version | head -1"),
        # What one edge core can sign: the floor of a full handshake's cost.
        "openssl_sign_per_s": first_line(
            "openssl speed -seconds 1 rsa2048 ecdsap256 2>/dev/null | awk "
            # OpenSSL 3.0 prints "rsa 2048 bits ... sign/s verify/s"; 3.5
            # (Debian 13) a keygen/encaps/decaps line, then the sign line, as "rsa2048 ...".
            '\'/^rsa 2048|^ *rsa2048 / {r=$(NF-1)} /nistp256/ {e=$(NF-1)} END {print "RSA 2048 " r ", ECDSA P-256 " e}\'',
            NGINX,
        ),
    }


def markdown(data):
    m, cfg, lines = data["machine"], data["settings"], []
    add = lines.append
    add(f"Measured {m['date']} ({'smoke' if data['smoke'] else 'full'} run), `{data['command']}`")
    add("")
    add(
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory']} memory, kernel {m['kernel']}; "
        f"load average at start {m['loadavg_at_start']}; {m['other_containers']} other containers running"
    )
    add(f"- edge: {m['edge_distro']}, {m['nginx']}, Caddy {m['caddy']}, {m['openssl_edge']}")
    add(f"- client: {m['wrk']}; Python {m['python_client']}; {m['ansible']}")
    add(
        f"- wrk: {cfg['threads']} threads, {cfg['connections']} connections, {cfg['duration']} s per run, "
        "HTTP/1.1 keep-alive (HTTPS through the proxies, plain HTTP direct)"
    )
    add("")
    add("### Throughput and latency (small requests)")
    add("")
    add(
        "| workload | target | req/s | of direct | p50 ms | p99 ms | proxy CPU µs/req | backend CPU µs/req "
        "| new TIME_WAIT on the edge (upstream side) | other containers |"
    )
    add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["throughput"]:
        r = row["result"]
        target = f"direct ({row['edge']} edge)" if row["target"] == "direct" else row["target"]
        if not r:
            add(f"| `{row['workload']}` | {target} | failed | | | | | | | |")
            continue
        add(
            f"| `{row['workload']}` | {target} | {r['rps']:.0f} | {r.get('of_direct', 0):.3f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us_per_request']['proxy']} | "
            f"{r['cpu_us_per_request']['backend']} | {r['tw_after'] - r['tw_before']} "
            f"({r['tw_upstream_after'] - r['tw_upstream_before']}) | {r.get('other_containers', '?')} |"
        )
    add("")
    add("### What the application's guards cost (path_guard and denied_paths)")
    add("")
    add(
        "`asyncio /health` through the pipelit site (the profile's guards on) and an unguarded twin "
        "(same proxy, certificate type and backend), alternating, the median of each; proxy CPU per request "
        "from /proc, so the difference is the guards' cost give or take the runs' noise."
    )
    add("")
    add("| proxy | runs each | guarded req/s | unguarded req/s | guarded / unguarded | proxy CPU µs/req guarded | unguarded | difference |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data.get("guard_cost", []):
        add(
            f"| {row['proxy']} | {row['runs_each']} | {row['guarded_rps']} | {row['unguarded_rps']} | {row['rps_ratio']:.3f} | "
            f"{row['guarded_proxy_cpu_us']} | {row['unguarded_proxy_cpu_us']} | {row['guard_cpu_us']} |"
        )
    add("")
    add("### Idle WebSockets")
    add("")
    add(
        "| proxy | asked | opened | still open at the end | proxy RSS before → after MiB | bytes per connection "
        "| echo p50 ms | echo p99 ms (samples) | open time s |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["websockets"]:
        if "opened" not in row:
            add(f"| {row['proxy']} | {row['target']} | failed | | | | | | |")
            continue
        add(
            f"| {row['proxy']} | {row['target']} | {row['opened']} | {row['still_open']} | "
            f"{row['rss_before_mib']} → {row['rss_after_mib']} | {row['bytes_per_connection']} | "
            f"{row['echo_p50_ms']} | {row['echo_p99_ms']} ({row['echo_samples']}) | {row['open_seconds']} |"
        )
    add("")
    add("### New TLS connections (full handshakes, no resumption)")
    add("")
    add(
        f"{cfg['tls_processes']} client processes, {cfg['tls_seconds']} s each; `openssl speed` on the edge, "
        f"signatures per second on one core: {m['openssl_sign_per_s']}."
    )
    add("")
    add("| proxy | key | handshakes/s | proxy CPU µs per handshake | TLS |")
    add("| --- | --- | ---: | ---: | --- |")
    for row in data["handshakes"]:
        if "per_second" not in row:
            add(f"| {row['proxy']} | {row['key']} | failed | | |")
            continue
        add(f"| {row['proxy']} | {row['key']} | {row['per_second']:.0f} | {row['proxy_cpu_us_per_handshake']} | {row['version']} |")
    add("")
    lines.extend(http3.markdown(data.get("http3"), cfg))
    add("### Ansible (converge: both edges in one play over docker exec; pipelit.yml: the SSH edge alone)")
    add("")
    add("| run | seconds | tasks per host (changed) | slowest tasks (s) |")
    add("| --- | ---: | --- | --- |")
    for row in data["ansible"]:
        hosts = ", ".join(f"{h}: {v['tasks']} ({v['changed']})" for h, v in sorted(row["hosts"].items()))
        slow = "; ".join(f"{t['task']} {t['seconds']:.1f}" for t in row.get("slowest_tasks", [])[:4])
        add(f"| {row['run']} | {row['seconds']:.0f} | {hosts} | {slow} |")
    add("")
    if data["problems"]:
        add("### Measurements that could not be made")
        add("")
        lines.extend(f"- {p}" for p in data["problems"])
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--ansible", action="append", default=[], metavar="NAME=SECONDS:LOGFILE")
    parser.add_argument("--command", default="bench/run")
    args = parser.parse_args()
    global smoke_run  # noqa: PLW0603 - one flag for the whole run
    smoke_run = args.smoke
    cfg = SMOKE if args.smoke else FULL
    data = {"smoke": args.smoke, "command": args.command, "settings": cfg, "machine": machine()}
    data["ansible"] = ansible_runs(args.ansible)
    data["throughput"] = throughput(cfg)
    data["guard_cost"] = guard_cost(cfg)
    data["websockets"] = websockets(cfg)
    data["handshakes"] = handshakes(cfg)
    # Last: its lossy link must not touch the other sections (and is gone
    # again when it returns, whatever happened).
    try:
        use_backend("asyncio")
        data["http3"] = http3.measure(cfg, sh, cpu_seconds, log, problems)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        problems.append(f"HTTP/3 section: {exc}")
    data["problems"] = problems
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "RESULTS.json"), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    text = markdown(data)
    with open(os.path.join(args.out, "RESULTS.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    if problems:
        log(f"{len(problems)} measurement(s) could not be made")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
