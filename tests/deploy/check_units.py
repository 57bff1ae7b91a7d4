#!/usr/bin/env python3
"""Loads deploy/rampart-server.service and deploy/rampart-agent.service with
`systemd-analyze verify` and checks the server unit is hardened like the
agent's.

verify needs the ExecStart binary to exist, so each unit is verified as a
copy whose ExecStart names the binary built in this tree (every other line
verbatim). verify exits 0 on unknown keys and bad values (it only warns), so
any output at all is a failure here.

  check_units.py --repo DIR --server PATH --agent PATH

Exit 0 when both units load cleanly; 1 with one line per problem otherwise.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

problems = []

# Hardening both units must have, with the same value.
SHARED = [
    "DynamicUser", "NoNewPrivileges", "ProtectSystem", "ProtectHome",
    "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
    "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
    "LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC", "UMask",
    "SystemCallArchitectures", "SystemCallFilter", "KillSignal",
]


def read_unit(path):
    keys = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def verify(path, binary):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r"^ExecStart=\S+", "ExecStart=" + binary, text, flags=re.M)
    if n != 1:
        problems.append(f"{path}: expected one ExecStart=, found {n}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text)
        r = subprocess.run(["systemd-analyze", "verify", copy],
                           capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            problems.append(f"{path}: systemd-analyze verify exit {r.returncode}: {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    server_unit = os.path.join(args.repo, "deploy", "rampart-server.service")
    agent_unit = os.path.join(args.repo, "deploy", "rampart-agent.service")
    verify(server_unit, os.path.abspath(args.server))
    verify(agent_unit, os.path.abspath(args.agent))

    server, agent = read_unit(server_unit), read_unit(agent_unit)
    for key in SHARED:
        if server.get(key) != agent.get(key):
            problems.append(f"rampart-server.service: {key}={server.get(key)} differs from "
                            f"the agent's {agent.get(key)}")
    if server.get("CapabilityBoundingSet") != [""]:
        problems.append("rampart-server.service: CapabilityBoundingSet= must be empty "
                        "(the server needs no capability)")
    if "AF_NETLINK" in " ".join(server.get("RestrictAddressFamilies", [])):
        problems.append("rampart-server.service: no AF_NETLINK (the server has no firewall)")
    if server.get("StateDirectory") != ["rampart-server"]:
        problems.append("rampart-server.service: StateDirectory must be rampart-server")
    for p in problems:
        print("check_units:", p)
    if problems:
        return 1
    print("check_units: rampart-server.service and rampart-agent.service load cleanly "
          f"with systemd-analyze verify; {len(SHARED)} hardening keys shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
