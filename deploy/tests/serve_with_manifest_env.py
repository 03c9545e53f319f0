#!/usr/bin/env python3
"""The environment and files the manifests give the containers are settings `parq` reads.

For every overlay, renders it with `kubectl kustomize` and checks the `parq` Deployment's and
the `parq-migrate` Job's containers:
  - every PARQ_* variable they set is one `parq config keys` lists (the server ignores other
    PARQ_* variables, so a misspelt one would silently do nothing);
  - no secret is in the environment: a secret key is only given as PARQ_<KEY>_FILE;
  - every file a variable names is in a mounted volume of the Secret that the ExternalSecret
    fills, under a key that the ExternalSecret defines;
  - terminationGracePeriodSeconds covers the preStop pause plus PARQ_SHUTDOWN_GRACE_SECS.
Then, for the production overlay, it materialises the mounted Secret as local files with local
values (this machine's PostgreSQL in a fresh schema, its Redis under a fresh key prefix,
generated keys), runs the Job's `parq migrate` twice at once and once more with exactly the
Job's environment, runs `parq serve` with exactly the Deployment's environment (only the listen
port, the schema and the key prefix take local values), checks that the probes' paths and the
ServiceMonitor's path answer 200, and stops it with SIGTERM.

    serve_with_manifest_env.py --parq target/debug/parq

PARQ_TEST_PG_URL and PARQ_TEST_REDIS_URL name the servers (defaults: 127.0.0.1). Prints
`N passed, N failed` and exits non-zero when anything failed.
"""

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import yaml

DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERLAYS = ["overlays/production", "overlays/nginx-ingress"]
PG_URL = os.environ.get("PARQ_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PARQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")

results = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f"\n     {detail}"))
    return ok


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, overlay)],
                         check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise SystemExit(f"no {kind} {name} in the rendered manifests")


def known_keys(parq):
    """`parq config keys`: {variable: (key, kind)}."""
    out = subprocess.run([parq, "config", "keys"], check=True, capture_output=True, text=True).stdout
    known = {}
    for line in out.splitlines():
        key, kind, names = line.split("\t")
        for name in names.split():
            known[name] = (key, kind)
    return known


def secret_files(docs, pod_spec, container):
    """{path in the container: key of the Secret} for every mounted Secret volume."""
    external = {d["spec"]["target"]["name"]: {x["secretKey"] for x in d["spec"]["data"]}
                for d in docs if d["kind"] == "ExternalSecret"}
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    files = {}
    for m in container.get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if not secret:
            continue
        keys = external.get(secret["secretName"])
        if keys is None:
            raise SystemExit(f"the Secret {secret['secretName']} is filled by no ExternalSecret")
        items = secret.get("items") or [{"key": k, "path": k} for k in sorted(keys)]
        for item in items:
            if item["key"] not in keys:
                raise SystemExit(f"{secret['secretName']} has no key {item['key']} (see externalsecret.yaml)")
            files[os.path.join(m["mountPath"], item["path"])] = item["key"]
    return files


def workload_of(docs, kind, name):
    """The workload, its container and its mounted Secret files."""
    workload = find(docs, kind, name)
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    return workload, container, secret_files(docs, pod, container)


def check_workload(overlay, docs, kind, name, known):
    workload, container, files = workload_of(docs, kind, name)
    where = f"{overlay} {kind} {name}"
    env = container.get("env", [])
    names = [e["name"] for e in env]
    parq = [n for n in names if n.startswith("PARQ_")]
    unknown = [n for n in parq if n not in known]
    check(not unknown, f"{where}: its {len(parq)} PARQ_ variables are keys `parq config keys` lists",
          f"not read by this parq: {', '.join(unknown)}")
    from_refs = [e["name"] for e in env if "value" not in e]
    check(not from_refs, f"{where}: every variable has a plain value (secrets are files)",
          f"valueFrom: {', '.join(from_refs)}")
    plain_secrets = [n for n in parq if n in known and known[n][1] == "secret" and not n.endswith("_FILE")]
    check(not plain_secrets, f"{where}: no secret in the environment, only PARQ_<KEY>_FILE",
          f"secrets given as values: {', '.join(plain_secrets)}")
    paths = [e["value"] for e in env if e["name"].endswith("_FILE") and "value" in e]
    missing = [p for p in paths if p not in files]
    check(not missing, f"{where}: the {len(paths)} files its variables name are keys of a mounted Secret",
          f"not mounted: {', '.join(missing)}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_values(parq, tmp):
    """A local value for every key of the Secret, by key."""
    pem = subprocess.run(["psql", PG_URL, "-tAc", "SHOW ssl_cert_file"], capture_output=True, text=True)
    cert = pem.stdout.strip()
    ca = open(cert).read() if cert and os.access(cert, os.R_OK) else ""
    keyring = subprocess.run([parq, "keys", "generate"], capture_output=True, text=True)
    return {
        "store_url": PG_URL,
        "lock_url": REDIS_URL,
        "notifier_url": REDIS_URL,
        "stripe_secret_key": "sk_test_" + secrets.token_hex(12),
        "webhook_secret": "whsec_" + secrets.token_hex(16),
        # `parq keys generate` writes a keyring (where this parq has it).
        "pass_keys": keyring.stdout if keyring.returncode == 0 else "",
        "admin_key": secrets.token_hex(24),
        "pg_ca.pem": ca,
        "redis_ca.pem": ca,
    }


def materialise(container, files, values, tmp, replace):
    """The container's environment, with its Secret files written under tmp."""
    for path, key in files.items():
        if key not in values:
            raise SystemExit(f"no local value for the Secret's key {key}: add one to local_values()")
        local = tmp + path
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "w") as f:
            f.write(values[key])
        os.chmod(local, 0o440)
    env = {}
    for e in container.get("env", []):
        value = e["value"]
        if value in files:
            value = tmp + value
        env[e["name"]] = replace.get(e["name"], value)
    return env


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def boot(parq, docs):
    deployment, server, server_files = workload_of(docs, "Deployment", "parq")
    _, migrate, migrate_files = workload_of(docs, "Job", "parq-migrate")
    pod = deployment["spec"]["template"]["spec"]
    senv = {e["name"]: e.get("value") for e in server.get("env", [])}
    pause = server.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = int(senv.get("PARQ_SHUTDOWN_GRACE_SECS") or 30)
    check(pod["terminationGracePeriodSeconds"] > pause + grace,
          f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > preStop {pause} s"
          f" + shutdown_grace_secs {grace} s")

    tmp = tempfile.mkdtemp(prefix="parq-deploy-")
    schema = "parq_t_" + uuid.uuid4().hex[:12]
    prefix = "parq-t-" + uuid.uuid4().hex[:12]
    port = free_port()
    replace = {"PARQ_STORE_SCHEMA": schema, "PARQ_REDIS_PREFIX": prefix, "PARQ_BIND": f"127.0.0.1:{port}"}
    child = None
    try:
        values = local_values(parq, tmp)
        menv = materialise(migrate, migrate_files, values, tmp, replace)
        args = migrate.get("args", [])
        # Two at once (a retried Job beside a new one), then once more: nothing is applied twice.
        runs = [subprocess.Popen([parq, *args], env=menv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for _ in range(2)]
        outs = [(r.wait(timeout=120), r.stdout.read()) for r in runs]
        check(all(code == 0 for code, _ in outs), f"two `parq {' '.join(args)}` at once with the Job's environment",
              "\n".join(o for _, o in outs))
        again = subprocess.run([parq, *args], env=menv, capture_output=True, text=True, timeout=120)
        check(again.returncode == 0 and "0 applied now" in again.stdout and "up to date" in again.stdout,
              "a third run applies nothing", again.stdout + again.stderr)

        senv = materialise(server, server_files, values, tmp, replace)
        log = open(os.path.join(tmp, "serve.log"), "w+")
        child = subprocess.Popen([parq, *server.get("args", [])], env=senv, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        status = None
        while time.time() < deadline and child.poll() is None:
            status = get(base + "/readyz")
            if status == 200:
                break
            time.sleep(0.3)
        log.seek(0)
        check(status == 200, f"`parq {' '.join(server.get('args', []))}` with the Deployment's environment is ready"
              f" (/readyz 200)", f"status {status}, exit {child.poll()}:\n{log.read()[-3000:]}")
        probes = [server[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
        monitor = find(docs, "ServiceMonitor", "parq")
        paths = probes + [e["path"] for e in monitor["spec"]["endpoints"]]
        answers = {p: get(base + p) for p in paths}
        check(all(s == 200 for s in answers.values()), f"the probes' and the ServiceMonitor's paths answer 200: {paths}",
              str(answers))
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=grace + 5)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, f"SIGTERM stops it cleanly within shutdown_grace_secs", f"exit {code}")
    finally:
        if child and child.poll() is None:
            child.kill()
            child.wait()
        subprocess.run(["psql", PG_URL, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], capture_output=True)
        host, _, rport = REDIS_URL.split("://", 1)[1].rstrip("/").partition(":")
        keys = subprocess.run(["redis-cli", "-h", host, "-p", rport or "6379", "--scan", "--pattern", prefix + "*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-h", host, "-p", rport or "6379", "DEL", *keys[i:i + 500]],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parq", required=True, help="the parq binary")
    a = ap.parse_args()
    parq = os.path.abspath(a.parq)
    known = known_keys(parq)
    for overlay in OVERLAYS:
        docs = render(overlay)
        check_workload(overlay, docs, "Deployment", "parq", known)
        check_workload(overlay, docs, "Job", "parq-migrate", known)
    boot(parq, render("overlays/production"))
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
