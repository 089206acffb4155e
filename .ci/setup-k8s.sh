#!/usr/bin/env bash
# A real single-node Kubernetes cluster with the real Kubeflow training operator, on this machine.
#   bash .ci/setup-k8s.sh          build what is missing, start what is not running, wait until the
#                                  node is Ready and CoreDNS and the operator answer; print the
#                                  admin kubeconfig path on stdout. Quiet unless something fails.
#   bash .ci/setup-k8s.sh --stop   stop every process this script started (state is kept).
#   bash .ci/setup-k8s.sh --reset  stop, then remove the cluster's state (not the built binaries).
# Needs root, Go (the binaries are built from their Go modules, see .ci/k8s/) and Debian's apt.
#
# What runs (each a plain background process, logs under $STATE/logs):
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler on 127.0.0.1; containerd (an
#   instance of its own: own config, root, state and socket, beside any Docker one); kubelet, its
#   pods on the bridge nrk0 (10.244.0.1/24, made here; no route or NAT to anywhere else); CoreDNS
#   on 10.244.0.1:53 (cluster names only: it forwards nothing); the training operator out of
#   cluster with the admin kubeconfig, its webhook reached by the API server through a selectorless
#   Service (--enable-aggregator-routing resolves it to 10.244.0.1:9443).
# Pods pull job images from the loopback registry 127.0.0.1:5000 (plain HTTP, by digest); the
# sandbox (pause) image and the workers' init image are built here and imported into containerd.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=.ci/lib.sh
source "$HERE/lib.sh"
# shellcheck source=.ci/k8s/versions.env
source "$HERE/k8s/versions.env"

STATE=${NRK_K8S_STATE:-/var/lib/nemo-run-k8s}
RUN=/run/nemo-run-k8s
LOGS=$STATE/logs
PKI=$STATE/pki
BRIDGE=nrk0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
NODE_NAME=nrk-node
APISERVER=https://127.0.0.1:6443
OPERATOR_NS=kubeflow
WAIT_S=${NRK_K8S_WAIT_S:-180}
CONTAINERD_SOCK=$RUN/containerd.sock
REPO_ROOT="$(cd "$HERE/.." && pwd)"
PAUSE_IMAGE=nrk.local/pause
INIT_IMAGE=nrk.local/wait-for-dns
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet coredns
    training-operator)

# --- process helpers ---------------------------------------------------------------------------

pidfile() { echo "$RUN/$1.pid"; }

# running NAME: whether the process started as NAME still lives.
running() {
    local pid
    [[ -f $(pidfile "$1") ]] || return 1
    pid=$(<"$(pidfile "$1")")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# start NAME COMMAND...: start COMMAND in the background (own session), log to $LOGS/NAME.log.
start() {
    local name=$1
    shift
    if running "$name"; then
        return 0
    fi
    mkdir -p "$LOGS" "$RUN"
    echo "=== $(date -u +%FT%TZ) $*" >>"$LOGS/$name.log"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$name")"
}

# die_with_log NAME MESSAGE: the tail of NAME's log, then MESSAGE naming the log.
die_with_log() {
    tail -n 40 "$LOGS/$1.log" >&2 || true
    die "$2 (log: $LOGS/$1.log)"
}

# wait_for NAME WHAT COMMAND...: retry COMMAND until it succeeds; fail with NAME's log tail.
wait_for() {
    local name=$1 what=$2 deadline=$((SECONDS + WAIT_S))
    shift 2
    until "$@" >/dev/null 2>&1; do
        running "$name" || die_with_log "$name" "$name exited before $what"
        ((SECONDS < deadline)) || die_with_log "$name" "$what: not within ${WAIT_S}s"
        sleep 0.5
    done
}

stop_all() {
    local name pid i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        running "$name" || continue
        pid=$(<"$(pidfile "$name")")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$(pidfile "$name")"
    done
    kill_shims
}

# kill_shims: containerd shims of our containerd (named by our socket) outlive it; end them and
# their containers, so a restarted cluster starts clean.
kill_shims() {
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
        pkill -9 -P "$pid" 2>/dev/null || true
        kill -9 "$pid" 2>/dev/null || true
    done
}

# wipe_runtime_state: what a stopped cluster leaves that a new start must not inherit (pods,
# their mounts, IP reservations, etcd's objects). Certificates and images stay.
wipe_runtime_state() {
    local m
    kill_shims
    # Unmount whatever kubelet and containerd left mounted below our state (deepest first).
    for m in $(awk -v s="$STATE" -v r="$RUN" '$2 ~ "^(" s "|" r ")/" {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$STATE/etcd" "$STATE/kubelet" "$STATE/pod-logs" "$STATE/cni/ipam" "$RUN"
}

case "${1:-}" in
--stop)
    need_root "stopping the cluster"
    stop_all
    exit 0
    ;;
--reset)
    need_root "resetting the cluster"
    stop_all
    wipe_runtime_state
    rm -rf "$STATE/containerd"
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [--stop|--reset]" >&2
    exit 2
    ;;
esac

need_root "running a Kubernetes cluster"

# --- quick path: everything already up -----------------------------------------------------------

command -v go >/dev/null || die "Go is needed to build the cluster's components (see .ci/k8s/)"
K8S_BIN=$(bash "$HERE/k8s/build.sh" --bindir kubernetes)
ETCD_BIN=$(bash "$HERE/k8s/build.sh" --bindir etcd)
COREDNS_BIN=$(bash "$HERE/k8s/build.sh" --bindir coredns)
OPERATOR_BIN=$(bash "$HERE/k8s/build.sh" --bindir operator)
IMAGES_BIN=$(bash "$HERE/k8s/build.sh" --bindir images)
IMAGES_TAG=${IMAGES_BIN##*-}
# What the running cluster was started from: another set of binaries means a restart.
RECIPE="$K8S_BIN $ETCD_BIN $COREDNS_BIN $OPERATOR_BIN $IMAGES_BIN $(sha256sum <"${BASH_SOURCE[0]}")"

# healthy: every daemon lives and the API server says the node is Ready and the operator answers.
healthy() {
    local name
    for name in "${DAEMONS[@]}"; do running "$name" || return 1; done
    [[ -f $STATE/admin.conf ]] || return 1
    [[ -f $RUN/recipe && $(<"$RUN/recipe") == "$RECIPE" ]] || return 1
    curl -sf --max-time 2 http://127.0.0.1:18081/readyz >/dev/null || return 1
    curl -sf --max-time 2 http://127.0.0.1:18092/ready >/dev/null || return 1
    KUBECONFIG=$STATE/admin.conf kubectl get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# kubectl from .tools/bin (made by .ci/setup-helm.sh) unless one is on PATH already.
if ! command -v kubectl >/dev/null 2>&1; then
    bash "$HERE/setup-helm.sh" >&2
    export PATH="$REPO_ROOT/.tools/bin:$PATH"
fi

if healthy; then
    echo "$STATE/admin.conf"
    exit 0
fi

# --- packages and binaries ---------------------------------------------------------------------

apt_install containerd runc containernetworking-plugins iptables iproute2 openssl curl
bash "$HERE/k8s/build.sh" || die "building the cluster's components failed"

# A partly running cluster (a daemon died, or a new session after the old one's processes
# ended) is restarted from scratch: old pods and objects would only confuse the tests.
stop_all
wipe_runtime_state
mkdir -p "$STATE" "$RUN" "$LOGS" "$PKI"

# --- kernel and network --------------------------------------------------------------------------

# kubelet, containerd and every pod want inotify instances; the VM allows 128.
if (($(cat /proc/sys/fs/inotify/max_user_instances) < 1024)); then
    sysctl -qw fs.inotify.max_user_instances=1024
fi
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
fi
ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Pods talk to each other and to the node's bridge address only. Docker sets FORWARD's policy to
# DROP (and br_netfilter sends bridged frames through it): let pod-to-pod traffic through, and
# drop anything routed between the bridge and any other interface, whatever the policy.
ipt() { iptables -C "$@" 2>/dev/null || iptables -I "$@"; }
ipt FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
ipt FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
ipt FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT

# --- certificates (openssl) ------------------------------------------------------------------

# cert NAME CN [O] [SAN]: a key and a certificate signed by our CA, unless they exist.
cert() {
    local name=$1 cn=$2 org=${3:-} san=${4:-} subj ext
    [[ -s $PKI/$name.crt ]] && return 0
    subj="/CN=$cn"
    [[ -n $org ]] && subj="/O=$org$subj"
    ext=$PKI/$name.ext
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [[ -n $san ]]; then
            echo "extendedKeyUsage=serverAuth,clientAuth"
            echo "subjectAltName=$san"
        else
            echo "extendedKeyUsage=clientAuth"
        fi
    } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" \
        -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
        -CAcreateserial -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$ext"
}

if [[ ! -s $PKI/ca.crt ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nemo-run-k8s-ci-ca" \
        -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
    rm -f "$PKI"/*.crt.old
fi
[[ -s $PKI/sa.key ]] || {
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}
cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1"
cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
cert admin kubernetes-admin system:masters
cert controller-manager system:kube-controller-manager
cert scheduler system:kube-scheduler
cert kubelet "system:node:$NODE_NAME" system:nodes
cert kubelet-serving "$NODE_NAME" "" "DNS:$NODE_NAME,IP:$NODE_IP"
chmod 600 "$PKI"/*.key

# kubeconfig NAME CERT: a kubeconfig for the API server with the client certificate CERT.
kubeconfig() {
    local file=$STATE/$1.conf cert=$2
    [[ -s $file ]] && return 0
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nrk
  cluster:
    server: $APISERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: nrk
  context: {cluster: nrk, user: $1}
current-context: nrk
EOF
    chmod 600 "$file"
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet
export KUBECONFIG=$STATE/admin.conf

# --- control plane ---------------------------------------------------------------------------

start etcd "$ETCD_BIN/etcd" --name nrk --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster nrk=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --log-level warn
wait_for etcd "etcd answers" curl -sf --max-time 2 http://127.0.0.1:2379/health

start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port=6443 --advertise-address="$NODE_IP" \
    --etcd-servers=http://127.0.0.1:2379 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --enable-aggregator-routing=true --profiling=false \
    --endpoint-reconciler-type=none
wait_for kube-apiserver "the API server is ready" kubectl get --raw /readyz

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.conf" \
    --authentication-kubeconfig="$STATE/controller-manager.conf" \
    --authorization-kubeconfig="$STATE/controller-manager.conf" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.conf" \
    --authentication-kubeconfig="$STATE/scheduler.conf" \
    --authorization-kubeconfig="$STATE/scheduler.conf" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# --- node: containerd, CNI, images, kubelet ---------------------------------------------------

mkdir -p "$STATE/containerd/certs.d/127.0.0.1:5000" "$STATE/cni/net.d" "$STATE/cni/ipam" \
    "$STATE/kubelet" "$STATE/pod-logs"
cat >"$STATE/containerd/certs.d/127.0.0.1:5000/hosts.toml" <<'EOF'
# The loopback registry (.ci/setup-registry.sh): plain HTTP, like a user's private mirror.
server = "http://127.0.0.1:5000"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
oom_score = 0

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE:$IMAGES_TAG"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This VM withholds CAP_SYS_RESOURCE even from root, so no process may lower its oom_score_adj
  # (the CRI's -998 for sandboxes, kubelet's -997 for Guaranteed pods): runc then fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied". Clamp at containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
cat >"$STATE/cni/net.d/10-nrk.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nrk",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
start containerd containerd --config "$STATE/containerd/config.toml"
wait_for containerd "containerd answers" ctr --address "$CONTAINERD_SOCK" version

# The sandbox and init images: static programs of ours, in OCI archives, imported (never pulled).
for img in "pause:$PAUSE_IMAGE" "wait-for-dns:$INIT_IMAGE"; do
    bin=${img%%:*} ref=${img#*:}:$IMAGES_TAG
    if ! ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -qx "$ref"; then
        python3 "$HERE/k8s/mkimage.py" "$RUN/$bin.tar" "$ref" "$IMAGES_BIN/$bin"
        ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$RUN/$bin.tar" >/dev/null
        rm -f "$RUN/$bin.tar"
    fi
done

echo "nameserver $NODE_IP" >"$STATE/resolv.conf"
cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
failSwapOn: false
oomScoreAdj: 0
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
podPidsLimit: 4096
maxPods: 110
EOF
start_kubelet() {
    start kubelet "$K8S_BIN/kubelet" --config="$STATE/kubelet.yaml" \
        --kubeconfig="$STATE/kubelet.conf" --root-dir="$STATE/kubelet" \
        --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
}
# containerd answers `ctr version` before its CRI service has recovered the pods an earlier run
# left in its database (seconds, after a machine stop); a kubelet started in that window exits
# with "server is not initialized yet". Start it again, within WAIT_S, until it serves.
start_kubelet
deadline=$((SECONDS + WAIT_S))
until curl -sf --max-time 2 http://127.0.0.1:10248/healthz >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die_with_log kubelet "kubelet did not serve within ${WAIT_S}s"
    if ! running kubelet; then
        tail -n 5 "$LOGS/kubelet.log" | grep -q "not initialized yet" ||
            die_with_log kubelet "kubelet exited before it served"
        start_kubelet
    fi
    sleep 0.5
done

# --- CoreDNS ---------------------------------------------------------------------------------

cat >"$STATE/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18091
    ready 127.0.0.1:18092
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/admin.conf
        pods insecure
        ttl 5
    }
}
EOF
start coredns "$COREDNS_BIN/coredns" -conf "$STATE/Corefile"

# --- the training operator -----------------------------------------------------------------------

OPERATOR_SRC=$(cd "$HERE/k8s/operator" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' \
    github.com/kubeflow/training-operator)
kubectl apply --server-side --force-conflicts \
    -f "$OPERATOR_SRC/manifests/base/crds/kubeflow.org_pytorchjobs.yaml" >/dev/null
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $OPERATOR_NS}
---
# The operator's cert rotator fills this Secret and the webhook's caBundle.
apiVersion: v1
kind: Secret
metadata: {name: training-operator-webhook-cert, namespace: $OPERATOR_NS}
---
# No selector: the operator runs outside the cluster, on the node's bridge address.
apiVersion: v1
kind: Service
metadata: {name: training-operator, namespace: $OPERATOR_NS}
spec:
  ports: [{name: webhook, port: 443, targetPort: 9443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: training-operator-host
  namespace: $OPERATOR_NS
  labels: {kubernetes.io/service-name: training-operator, endpointslice.kubernetes.io/managed-by: nemo-run-k8s-ci}
addressType: IPv4
endpoints: [{addresses: [$NODE_IP]}]
ports: [{name: webhook, port: 9443, protocol: TCP}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: validator.training-operator.kubeflow.org}
webhooks:
- name: validator.pytorchjob.training-operator.kubeflow.org
  admissionReviewVersions: [v1]
  clientConfig:
    service: {name: training-operator, namespace: $OPERATOR_NS, path: /validate-kubeflow-org-v1-pytorchjob}
  failurePolicy: Fail
  sideEffects: None
  rules:
  - apiGroups: [kubeflow.org]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [pytorchjobs]
EOF
mkdir -p "$STATE/operator"
# The operator's template for the workers' init container, with our image instead of alpine.
cat >"$STATE/operator/init-container.yaml" <<'EOF'
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits:
      cpu: 100m
      memory: 20Mi
    requests:
      cpu: 50m
      memory: 10Mi
  command: ['/wait-for-dns', '{{.MasterAddr}}', '{{.MaxTries}}']
EOF
# In a cluster the kubelet mounts the webhook's cert Secret into the operator's pod, and its cert
# rotator waits for the files: out of cluster, write them here once the rotator filled the Secret.
WEBHOOK_CERTS=/tmp/k8s-webhook-server/serving-certs
rm -rf "$WEBHOOK_CERTS"
start training-operator env KUBECONFIG="$STATE/admin.conf" MY_POD_NAMESPACE="$OPERATOR_NS" \
    "$OPERATOR_BIN/training-operator" --enable-scheme=pytorchjob \
    --pytorch-init-container-image="$INIT_IMAGE:$IMAGES_TAG" \
    --pytorch-init-container-template-file="$STATE/operator/init-container.yaml" \
    --metrics-bind-address=127.0.0.1:18080 --health-probe-bind-address=127.0.0.1:18081 \
    --webhook-server-port=9443

webhook_secret_filled() {
    local key data
    mkdir -p "$WEBHOOK_CERTS"
    for key in tls.crt tls.key ca.crt; do
        data=$(kubectl get secret -n "$OPERATOR_NS" training-operator-webhook-cert \
            -o jsonpath="{.data.${key//./\\.}}")
        [[ -n $data ]] || return 1
        base64 -d <<<"$data" >"$WEBHOOK_CERTS/$key.new"
    done
    for key in tls.crt tls.key ca.crt; do mv "$WEBHOOK_CERTS/$key.new" "$WEBHOOK_CERTS/$key"; done
}
wait_for training-operator "the operator's webhook certificate" webhook_secret_filled

# --- wait until it all answers ---------------------------------------------------------------

node_ready() {
    kubectl get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
wait_for kubelet "node $NODE_NAME is Ready" node_ready
wait_for coredns "CoreDNS is ready" curl -sf --max-time 2 http://127.0.0.1:18092/ready
wait_for training-operator "the training operator is ready" \
    curl -sf --max-time 2 http://127.0.0.1:18081/readyz
# The webhook answers through the API server (a server-side dry run calls it).
webhook_answers() {
    kubectl create --dry-run=server -o name -f - <<EOF
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: setup-probe, namespace: default}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template:
        spec:
          containers: [{name: pytorch, image: "$PAUSE_IMAGE:$IMAGES_TAG"}]
EOF
}
wait_for training-operator "the operator's webhook answers the API server" webhook_answers
wait_for kube-controller-manager "the default ServiceAccount exists" \
    kubectl get serviceaccount default -n default
echo "$RECIPE" >"$RUN/recipe"
echo "$STATE/admin.conf"
