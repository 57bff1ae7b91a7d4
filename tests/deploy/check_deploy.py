#!/usr/bin/env python3
"""Validates deploy/compose.yaml, deploy/Dockerfile and the configs they use.

No Docker engine runs in CI, so this checks statically what the engine would
rely on: services and their healthchecks, the depends_on condition, pinned
image tags, volumes, a non-root user, ports that match the server config (the
HTTP port with /metrics published on loopback only, if at all), and
that the Dockerfile builds with scripts/build-release.sh (which CI runs) and
ships a HEALTHCHECK and a USER. With --server it also has rampart-server
parse the compose and container configs (`healthcheck --config`, which reads
the whole config and exits 2 on any configuration error).

  check_deploy.py --repo DIR [--server PATH/rampart-server]

Exit 0 when everything holds; 1 with one line per problem otherwise.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys

import yaml

problems = []


def check(cond, message):
    if not cond:
        problems.append(message)
    return cond


def port_of(hostport):
    m = re.fullmatch(r"(?:\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):(\d+)", str(hostport))
    return int(m.group(1)) if m else None


def load_server_config(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    return doc.get("server", {}) or {}


def check_tls(path, where):
    """A container listens on every interface: mutual TLS, never --insecure,
    with the certificate files under /etc/rampart/pki (a mounted directory)."""
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    server = doc.get("server") or {}
    check(not server.get("insecure", False),
          f"{where}: server.insecure must be off (the port is reachable from the network)")
    tls = doc.get("tls") or {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        check(str(tls.get(key, "")).startswith("/etc/rampart/pki/"),
              f"{where}: tls.{key} must name a file under /etc/rampart/pki/, is {tls.get(key)!r}")


def parse_dockerfile(path):
    """Returns [(stage_index, INSTRUCTION, args)] with continuations joined."""
    lines = []
    with open(path, encoding="utf-8") as f:
        buf = ""
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (line.strip().startswith("#") or not line.strip()):
                continue
            if line.strip().startswith("#"):
                continue  # comment inside a continuation
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            lines.append(buf + line)
            buf = ""
    out = []
    stage = -1
    for line in lines:
        instr, _, args = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, args.strip()))
    return out


def check_dockerfile(repo):
    path = os.path.join(repo, "deploy", "Dockerfile")
    ins = parse_dockerfile(path)
    froms = [a for _, i, a in ins if i == "FROM"]
    check(len(froms) == 2, f"Dockerfile: expected 2 stages, got {froms}")
    if len(froms) == 2:
        check(re.fullmatch(r"debian:12 AS \w+", froms[0], re.I) is not None,
              f"Dockerfile: build stage must be FROM debian:12 AS ..., is {froms[0]!r}")
        check(froms[1] == "debian:12-slim",
              f"Dockerfile: runtime stage must be FROM debian:12-slim, is {froms[1]!r}")
    for f in froms:
        check(":" in f.split()[0] and not f.split()[0].endswith(":latest"),
              f"Dockerfile: image {f!r} must have a pinned tag, not latest")
    # One RUN: by default (RAMPART_BINARIES=build) exactly the script CI
    # runs; scripts/container-test.sh takes CI's binaries (=prebuilt).
    build_runs = [a for s, i, a in ins if s == 0 and i == "RUN"]
    check(len(build_runs) == 1 and re.search(
        r"^case \"\$RAMPART_BINARIES\" in\s+build\) scripts/build-release\.sh /opt/rampart ;;",
        build_runs[0]) is not None,
          "Dockerfile: the build stage must RUN scripts/build-release.sh /opt/rampart "
          f"(the script CI runs) when RAMPART_BINARIES=build, has {build_runs}")
    check(("ARG", "RAMPART_BINARIES=build") in [(i, a) for s, i, a in ins if s == 0],
          "Dockerfile: the build stage's default must be ARG RAMPART_BINARIES=build")
    final = [(i, a) for s, i, a in ins if s == 1]
    users = [a for i, a in final if i == "USER"]
    check(len(users) == 1 and users[0].split(":")[0] not in ("0", "root"),
          f"Dockerfile: runtime stage needs one non-root USER, has {users}")
    user = users[0] if users else ""
    hc = [a for i, a in final if i == "HEALTHCHECK"]
    check(len(hc) == 1 and "rampart-server" in hc[0] and "healthcheck" in hc[0],
          f"Dockerfile: needs a HEALTHCHECK running rampart-server healthcheck, has {hc}")
    expose = sorted(int(p.split("/")[0]) for i, a in final if i == "EXPOSE"
                    for p in a.split())
    volumes = [a for i, a in final if i == "VOLUME"]
    check(any("/var/lib/rampart" in v for v in volumes),
          f"Dockerfile: needs VOLUME /var/lib/rampart, has {volumes}")
    entry = [a for i, a in final if i == "ENTRYPOINT"]
    cmd = [a for i, a in final if i == "CMD"]
    check(entry == ['["rampart-server"]'],
          f"Dockerfile: ENTRYPOINT must be [\"rampart-server\"], is {entry}")
    config_path = None
    if check(len(cmd) == 1, f"Dockerfile: needs one CMD, has {cmd}"):
        argv = yaml.safe_load(cmd[0])
        if check(isinstance(argv, list) and "--config" in argv[:-1],
                 f"Dockerfile: CMD must pass --config FILE, is {cmd[0]}"):
            config_path = argv[argv.index("--config") + 1]
    if hc and config_path:
        check(config_path in hc[0],
              "Dockerfile: HEALTHCHECK must read the same config as CMD")
    # Everything COPY'd from the context exists and is not .dockerignore'd.
    ignored = []
    with open(os.path.join(repo, ".dockerignore"), encoding="utf-8") as f:
        ignored = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    copied = {}
    for s, i, a in ins:
        if i != "COPY" or a.startswith("--from"):
            continue
        srcs = shlex.split(a)[:-1]
        dest = shlex.split(a)[-1]
        for src in srcs:
            if src == ".":
                continue
            check(os.path.exists(os.path.join(repo, src)),
                  f"Dockerfile: COPY source {src} does not exist")
            check(not any(src == g.strip("/") or src.startswith(g.strip("/") + "/")
                          for g in ignored),
                  f"Dockerfile: COPY source {src} is excluded by .dockerignore")
            copied[dest] = src
    for g in ignored:
        for needed in ("scripts", "deploy", "CMakeLists.txt", "migrations"):
            check(g.strip("/") != needed,
                  f".dockerignore excludes {needed}, which the build needs")
    return {"user": user, "expose": expose, "config_path": config_path,
            "copied": copied}


def check_compose(repo, docker):
    path = os.path.join(repo, "deploy", "compose.yaml")
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    services = doc.get("services", {})
    check(set(services) == {"postgres", "rampart-server"},
          f"compose: expected services postgres and rampart-server, got {sorted(services)}")
    for name, svc in services.items():
        image = svc.get("image", "")
        check(re.fullmatch(r"[\w./-]+:[\w.-]+", image) is not None
              and not image.endswith(":latest"),
              f"compose: {name}: image {image!r} needs a pinned tag (not latest)")
        check(svc.get("healthcheck", {}).get("test"),
              f"compose: {name}: needs a healthcheck")
        check(svc.get("restart") in ("unless-stopped", "always", "on-failure"),
              f"compose: {name}: should restart")
    declared_volumes = set((doc.get("volumes") or {}).keys())

    pg = services.get("postgres", {})
    check(str(pg.get("image", "")).startswith("postgres:15"),
          "compose: postgres must be postgres:15")
    pg_test = " ".join(map(str, pg.get("healthcheck", {}).get("test", [])))
    check("pg_isready" in pg_test, "compose: postgres healthcheck must use pg_isready")
    pg_env = pg.get("environment", {})
    password = str(pg_env.get("POSTGRES_PASSWORD", ""))
    check(password.startswith("${") or "POSTGRES_PASSWORD_FILE" in pg_env,
          "compose: the PostgreSQL password must come from the environment or a secret")
    pg_vols = [v for v in pg.get("volumes", []) if str(v).endswith(":/var/lib/postgresql/data")]
    check(pg_vols and pg_vols[0].split(":")[0] in declared_volumes,
          "compose: postgres data must be on a declared named volume")

    rs = services.get("rampart-server", {})
    check(rs.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
          and os.path.normpath(os.path.join(repo, "deploy", rs.get("build", {}).get("context", "")))
          == os.path.normpath(repo),
          "compose: rampart-server must build deploy/Dockerfile with the repository as context")
    check(rs.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
          "compose: rampart-server must depend on postgres with condition service_healthy")
    user = str(rs.get("user", docker["user"]))
    check(user.split(":")[0] not in ("", "0", "root"), f"compose: rampart-server runs as {user!r}")
    check(user == docker["user"], f"compose: user {user!r} differs from the Dockerfile's {docker['user']!r}")
    rs_test = " ".join(map(str, rs.get("healthcheck", {}).get("test", [])))
    check("rampart-server healthcheck" in rs_test,
          "compose: rampart-server healthcheck must run rampart-server healthcheck")
    command = rs.get("command", [])
    config_target = command[command.index("--config") + 1] if "--config" in command[:-1] else None
    check(config_target is not None, "compose: rampart-server command must pass --config")
    check(config_target is None or config_target in rs_test,
          "compose: the healthcheck must read the same config as the command")
    config_file = None
    data_volume = False
    for v in rs.get("volumes", []):
        parts = str(v).split(":")
        if len(parts) >= 2 and parts[1] == config_target:
            check(len(parts) == 3 and parts[2] == "ro", f"compose: config mount {v} must be :ro")
            config_file = os.path.normpath(os.path.join(repo, "deploy", parts[0]))
            check(os.path.isfile(config_file), f"compose: mounted config {parts[0]} does not exist")
        if len(parts) >= 2 and parts[1] == "/var/lib/rampart":
            data_volume = parts[0] in declared_volumes
    check(data_volume, "compose: /var/lib/rampart must be a declared named volume")
    env = rs.get("environment", {})
    check(str(env.get("PGPASSWORD", "")).startswith("${") or any(
        str(k).startswith("PGPASSFILE") for k in env),
        "compose: rampart-server must get the password from the environment or a secret")
    published = {}  # container port -> host address ("" = every interface)
    for p in rs.get("ports", []):
        m = re.fullmatch(r"(?:([\d.]+|\[[0-9a-f:]+\]):)?(\d+):(\d+)(?:/tcp)?", str(p))
        if check(m is not None, f"compose: port {p!r} must be [ADDRESS:]HOST:CONTAINER"):
            published[int(m.group(3))] = m.group(1) or ""
    pki_mount = [v for v in rs.get("volumes", [])
                 if str(v).split(":")[1:2] == ["/etc/rampart/pki"]]
    check(len(pki_mount) == 1 and str(pki_mount[0]).endswith(":ro"),
          "compose: rampart-server needs the certificates mounted read-only at /etc/rampart/pki")
    if config_file and os.path.isfile(config_file):
        check_tls(config_file, "compose config")
        server = load_server_config(config_file)
        check(str(server.get("db", "")).startswith("postgresql://")
              and "@postgres" in str(server.get("db", ""))
              and not re.search(r"://[^@/]*:[^@/]*@", str(server.get("db", ""))),
              "compose config: db must be postgresql://USER@postgres/... without a password")
        grpc = port_of(server.get("listen"))
        http = port_of(server.get("http_listen"))
        for what, port in (("listen", grpc), ("http_listen", http)):
            check(str(server.get(what, "")).startswith(("0.0.0.0:", "[::]:")),
                  f"compose config: server.{what} must listen on all interfaces in a container")
            if what == "listen":
                check(port in published, f"compose: server.{what} port {port} is not published")
            elif port in published:
                # /metrics lists every agent (id, version, addresses): never on
                # every interface of the host by default (issue 16 item 8d).
                check(published[port] in ("127.0.0.1", "[::1]"),
                      f"compose: the HTTP port {port} (/metrics: agent inventory) must be "
                      f"published on 127.0.0.1 only, is {published[port] or 'every interface'}")
            check(port in docker["expose"], f"Dockerfile: server.{what} port {port} is not EXPOSEd")
    return config_file


def check_defaults(repo, docker):
    example = load_server_config(os.path.join(repo, "deploy", "rampart-server.example.yaml"))
    defaults = sorted([port_of(example.get("listen")), port_of(example.get("http_listen"))])
    check(defaults == [7443, 9443], f"example config defaults changed: {defaults}")
    check(docker["expose"] == defaults,
          f"Dockerfile: EXPOSE {docker['expose']} differs from the server's default ports {defaults}")
    baked = docker["copied"].get(docker["config_path"])
    if check(baked is not None, "Dockerfile: the CMD config is not COPY'd into the image"):
        check_tls(os.path.join(repo, baked), baked)
        server = load_server_config(os.path.join(repo, baked))
        check(sorted([port_of(server.get("listen")), port_of(server.get("http_listen"))]) == defaults,
              f"{baked}: ports differ from EXPOSE")
        check(str(server.get("db", "")).startswith("sqlite:/var/lib/rampart/"),
              f"{baked}: SQLite must live in the /var/lib/rampart volume")
        return os.path.join(repo, baked)
    return None


def check_with_server(server_bin, configs):
    for config in configs:
        # healthcheck resolves the whole config first: 2 = config error;
        # 0 or 1 = it parsed (and something did or did not answer).
        r = subprocess.run([server_bin, "healthcheck", "--config", config, "--timeout", "1"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode in (0, 1),
              f"rampart-server rejects {config} (exit {r.returncode}): {r.stderr.strip()}")
        check(r.returncode == 0 or "127.0.0.1:9443/healthz" in r.stderr,
              f"healthcheck with {config} should probe 127.0.0.1:9443: {r.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--server")
    args = ap.parse_args()
    docker = check_dockerfile(args.repo)
    compose_config = check_compose(args.repo, docker)
    baked_config = check_defaults(args.repo, docker)
    if args.server:
        check_with_server(args.server, [c for c in (compose_config, baked_config) if c])
    for p in problems:
        print("check_deploy:", p)
    if problems:
        return 1
    print("check_deploy: deploy/Dockerfile, deploy/compose.yaml and their configs are consistent "
          f"(user {docker['user']}, ports {docker['expose']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
