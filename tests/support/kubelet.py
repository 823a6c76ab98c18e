"""A kubelet stand-in: the pods of rendered manifests run as local processes (docs/kubernetes.md,
"Running the rendered manifests").

No cluster can be reached from where the tests run, so this does what a node's
kubelet and a cluster's controllers would do with `kubectl kustomize`'s output,
as far as one machine allows:

- each pod of each Deployment, StatefulSet (`NAME-0`, `NAME-1`, ...) and Agones
  Fleet (a GameServer `NAME-xxxxx` each) gets an address of its own, a loopback
  one (`127.77.W.P`: Linux routes all of 127.0.0.0/8 to loopback), its "pod IP":
  the pod network is 127.77.0.0/16, or the one a Cluster is given (two
  clusters on two networks may run at once);
- each container runs as a real process with the manifests' command and
  arguments unchanged (a container without `command` runs the image's
  ENTRYPOINT, read from the Dockerfile: `twistd -n --pidfile= vinom`), its
  environment made as the kubelet makes it (`value`, `configMapKeyRef`,
  `fieldRef` status.podIP, status.hostIP and metadata.name, then `$(VAR)` in
  the arguments), in a container of its own: new user, mount and UTS
  namespaces (`unshare -Urmu`, no privilege needed), a root of its own
  (`chroot`) in which every mounted Secret, ConfigMap, emptyDir and volume
  claim is a directory at its `mountPath`, /etc is the machine's with an
  overlay (so `/etc/vinom/...` can be made) and an empty directory in place of
  each of its directories the caller cannot enter (Debian's redis-server's
  /etc/redis, 2770 redis:redis), the hostname is the pod's name,
  and /etc/hosts is the cluster's DNS: each Service's names
  (`NAME`, `NAME.NAMESPACE.svc.cluster.local`; a headless Service's are its
  ready pods' addresses, or all its pods' with `publishNotReadyAddresses`, and
  a StatefulSet pod's own `POD.SERVICE`) written as the endpoints change;
- the readiness probes are run as the kubelet would (httpGet on the pod's
  address, tcpSocket, exec in a container like the pod's), and a pod's
  addresses enter a Service's records once it is ready;
- each GameServer gets an Agones SDK stand-in (tests/support/agones_sdk.py) on
  `localhost:$AGONES_SDK_HTTP_PORT`, as Agones injects the variable, with the
  Fleet's Counters.

The pods, and the test's own players, share a network of their own
(`own_network`: the test runs again in a child trial in new user and network
namespaces), so the manifests' ports never meet what the machine listens on
(a developer's `twistd -n vinom` on 7350, another run).

What it cannot be: the pods share that one network stack (a pod binds its
own address, as the manifests' listeners do), they run as the caller (uid 0
inside the user namespace) not as `runAsUser`, no resource limit is
enforced, and there is no kube-proxy: a client reaches a Service through one
of its pods' addresses, which a LoadBalancer with `externalTrafficPolicy:
Local` does too.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import re
import shlex
import shutil
import string
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from attrs import define, field
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.agones_sdk import AgonesSDKStandIn
from tests.support.waiting import until

CHECKOUT = Path(__file__).resolve().parent.parent.parent
CLUSTER_DOMAIN = "cluster.local"
POD_NETWORK = "127.77.0.0/16"
# Set (to the test's id) in the child trial that runs a test in a network of its own.
OWN_NETWORK = "VINOM_TEST_OWN_NETWORK"
# The container's root: every top-level directory of the machine's bound in, /etc as an
# overlay (writable, the machine's underneath), the volumes at their mount paths, the
# cluster's /etc/hosts; then the pod's hostname, and the container's command.
CONTAINER = r"""
set -eu
chroot=$1; root=$2; etc_upper=$3; etc_work=$4; hosts=$5; hostname=$6; mounts=$7; shift 7
mount -t tmpfs tmpfs "$root"
for entry in /*; do
  name=${entry#/}
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "$root/$name"; continue; fi
  [ -d "$entry" ] || continue
  case "$name" in etc|proc) continue;; esac
  mkdir "$root/$name"
  mount --rbind "$entry" "$root/$name"
done
mkdir "$root/etc" "$root/proc"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$etc_upper,workdir=$etc_work" "$root/etc"
# A directory of the machine's /etc the container's root cannot enter (Debian's redis-server
# makes /etc/redis 2770 redis:redis, whose owner the user namespace does not map) would stop
# a mount or a file under it: an image has no such directory, the container sees an empty one.
find /etc -mindepth 1 -type d \( ! -readable -o ! -executable \) -prune -print |
while IFS= read -r hidden; do mount -t tmpfs -o mode=755 tmpfs "$root$hidden"; done
mount --rbind /proc "$root/proc"
touch "$root/etc/hosts"
mount --bind "$hosts" "$root/etc/hosts"
while IFS=' ' read -r source target; do
  [ -n "$source" ] || continue
  mkdir -p "$root$target"
  mount --bind "$source" "$root$target"
done < "$mounts"
hostname "$hostname"
exec "$chroot" "$root" "$@"
"""


def dockerfile_entrypoint() -> list[str]:
    """The image's ENTRYPOINT (exec form), from the Dockerfile."""
    from dockerfile_parse import DockerfileParser

    parsed = DockerfileParser(path=str(CHECKOUT / "Dockerfile"))
    entry: list[str] = []
    for instruction in parsed.structure:
        if instruction["instruction"] == "ENTRYPOINT":
            entry = json.loads(instruction["value"])
    return entry


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes's `$(VAR)` expansion: a defined variable is replaced, `$$` is `$`, an
    undefined reference stays as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                  text)  # fmt: skip


class Output(ProcessProtocol):
    def __init__(self, pod: str, container: str) -> None:
        self.name = f"{pod}/{container}"
        self.data = b""
        self.ended: Deferred[int | None] = Deferred()
        self.exit_code: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.data += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.exit_code = reason.value.exitCode if reason.check(ProcessDone) is None else 0
        self.ended.callback(self.exit_code)

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")


@define(eq=False)
class Pod:
    name: str
    ip: str
    owner: tuple[str, str]  # (kind, name) of the workload
    labels: dict[str, str]
    spec: dict[str, Any]
    processes: dict[str, Any] = field(factory=dict)
    outputs: dict[str, Output] = field(factory=dict)
    ready: bool = False
    gone: bool = False
    sdk: AgonesSDKStandIn | None = None
    sdk_port: Any = None
    # The arguments each container was started with, after $(VAR) expansion.
    argv: dict[str, list[str]] = field(factory=dict)

    def text(self, container: str | None = None) -> str:
        names = [container] if container else list(self.outputs)
        return "\n".join(f"--- {n}\n{self.outputs[n].text}" for n in names)

    def signal(self, name: str) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessExitedAlready):
                process.signalProcess(name)

    def ended(self) -> Deferred[Any]:
        from twisted.internet.defer import gatherResults

        return gatherResults([o.ended for o in self.outputs.values()])


class Cluster:
    """The rendered objects of one namespace, run (module docstring). `start()` starts
    every workload's pods; `kill(pod)` and `terminate(pod)` are a node lost and a
    pod deleted (SIGKILL; SIGTERM, its grace period then SIGKILL), after which a
    Deployment's or Fleet's controller would make a new pod: `replace(pod)`."""

    def __init__(self, documents: list[dict[str, Any]], work: Path,
                 secrets: dict[str, dict[str, bytes]],
                 environ: dict[str, str] | None = None,
                 network: str = POD_NETWORK) -> None:  # fmt: skip
        self.documents = documents
        self.network = ipaddress.ip_network(network)
        self.work = work
        self.secrets = secrets
        self.environ = environ or {}
        self.namespace = next(d["metadata"].get("namespace") for d in documents
                              if d["kind"] != "Namespace")  # fmt: skip
        self.config_maps = {d["metadata"]["name"]: dict(d.get("data", {}))
                            for d in documents if d["kind"] == "ConfigMap"}  # fmt: skip
        self.services = [d for d in documents if d["kind"] == "Service"]
        self.pods: list[Pod] = []
        self.hosts_file = work / "hosts"
        # Each workload's number in its pods' addresses (127.77.N.P), by kind and name: the
        # same in every Cluster of the same objects (a test plans addresses before start).
        self._workloads = {(kind, name): n for n, (kind, name) in enumerate(sorted(
            (kind, name) for kind, name, _replicas, _template in self.workloads()), 1)}
        self._next_pod: dict[tuple[str, str], int] = {}
        self._probing = True
        self._probe_loop: Deferred[None] | None = None
        work.mkdir(parents=True, exist_ok=True)
        self.write_hosts()

    # -- the objects ---------------------------------------------------------

    @functools.cached_property
    def entrypoint(self) -> list[str]:
        """The image's ENTRYPOINT, for a container without `command`."""
        return dockerfile_entrypoint()

    def object(self, kind: str, name: str) -> dict[str, Any]:
        return next(d for d in self.documents
                    if d["kind"] == kind and d["metadata"]["name"] == name)  # fmt: skip

    def workloads(self) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
        """(kind, name, replicas, pod template) of each Deployment, StatefulSet, Fleet."""
        for d in self.documents:
            kind, name = d["kind"], d["metadata"]["name"]
            if kind in ("Deployment", "StatefulSet", "Fleet"):
                yield kind, name, d["spec"].get("replicas", 1), d["spec"]["template"]

    def pod_ip(self, owner: tuple[str, str], index: int) -> str:
        return str(self.network[self._workloads[owner] * 256 + index + 1])

    def planned_ips(self, kind: str, name: str, count: int) -> list[str]:
        """The addresses the first `count` pods of a workload get (a certificate names them)."""
        return [self.pod_ip((kind, name), i) for i in range(count)]

    # -- DNS -----------------------------------------------------------------

    def records(self) -> dict[str, list[str]]:
        """Name -> addresses, as the cluster's DNS would answer now."""
        found: dict[str, list[str]] = {"localhost": ["127.0.0.1"]}
        live = [p for p in self.pods if not p.gone]
        for service in self.services:
            spec = service["spec"]
            selector = spec.get("selector", {})
            name = service["metadata"]["name"]
            members = [p for p in live
                       if all(p.labels.get(k) == v for k, v in selector.items())]  # fmt: skip
            listed = [p for p in members if p.ready or spec.get("publishNotReadyAddresses")]
            for full in (name, f"{name}.{self.namespace}",
                         f"{name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"):  # fmt: skip
                found[full] = [p.ip for p in listed]
            if spec.get("clusterIP") == "None":
                for p in members:
                    if p.owner[0] == "StatefulSet":
                        for full in (f"{p.name}.{name}", f"{p.name}.{name}.{self.namespace}",
                                     f"{p.name}.{name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"):
                            found[full] = [p.ip]
        return found

    def write_hosts(self) -> None:
        """/etc/hosts of every pod (one file bound into each): rewritten in place."""
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        for name, addresses in sorted(self.records().items()):
            if name != "localhost":
                lines += [f"{address} {name}" for address in addresses]
        text = "\n".join(lines) + "\n"
        mode = "r+" if self.hosts_file.exists() else "w"
        with open(self.hosts_file, mode) as f:  # the same file (inode): bound into each pod
            f.seek(0)
            f.write(text)
            f.truncate()

    # -- pods ----------------------------------------------------------------

    def start(self) -> None:
        for kind, name, replicas, template in self.workloads():
            for _ in range(replicas):
                self.start_pod(kind, name, template)
        self._probe_loop = Deferred.fromCoroutine(self._probe_forever())

    def start_pod(self, kind: str, name: str, template: dict[str, Any],
                  index: int | None = None) -> Pod:  # fmt: skip
        owner = (kind, name)
        if index is None:
            index = self._next_pod.get(owner, 0)
            self._next_pod[owner] = index + 1
        pod_name = f"{name}-{index}" if kind == "StatefulSet" else f"{name}-{index:05x}"
        fleet_spec: dict[str, Any] | None = None
        if kind == "Fleet":
            fleet_spec = template["spec"]
            template = fleet_spec["template"]
        pod = Pod(pod_name, self.pod_ip(owner, index), owner,
                  dict(template["metadata"].get("labels", {})), template["spec"])  # fmt: skip
        self.pods.append(pod)
        extra_env: dict[str, str] = {}
        if fleet_spec is not None:
            counters = {n: (c.get("count", 0), c.get("capacity", 1000))
                        for n, c in fleet_spec.get("counters", {}).items()}  # fmt: skip
            pod.sdk = AgonesSDKStandIn(counters)
            pod.sdk_port = reactor.listenTCP(0, pod.sdk.site(), interface="127.0.0.1")
            extra_env["AGONES_SDK_HTTP_PORT"] = str(pod.sdk_port.getHost().port)
        self.write_hosts()  # its StatefulSet name, and Services listing pods not ready
        for container in template["spec"]["containers"]:
            self._run(pod, container, extra_env)
        return pod

    def _volume_dirs(self, pod: Pod) -> dict[str, Path]:
        base = self.work / "pods" / pod.name / "volumes"
        dirs: dict[str, Path] = {}
        for volume in pod.spec.get("volumes", []):
            path = base / volume["name"]
            if path.exists():
                dirs[volume["name"]] = path
                continue
            path.mkdir(parents=True)
            if "secret" in volume:
                data = self.secrets[volume["secret"]["secretName"]]
                self._project(path, data, volume["secret"].get("items"))
            elif "configMap" in volume:
                data = {k: v.encode() for k, v in
                        self.config_maps[volume["configMap"]["name"]].items()}  # fmt: skip
                self._project(path, data, volume["configMap"].get("items"))
            dirs[volume["name"]] = path
        owner = self.object(*pod.owner) if pod.owner[0] == "StatefulSet" else {}
        for claim in owner.get("spec", {}).get("volumeClaimTemplates", []):
            path = base / claim["metadata"]["name"]
            path.mkdir(parents=True, exist_ok=True)
            dirs[claim["metadata"]["name"]] = path
        return dirs

    @staticmethod
    def _project(path: Path, data: dict[str, bytes], items: list[dict[str, str]] | None) -> None:
        chosen = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, name in chosen:
            (path / name).write_bytes(data[key])
            os.chmod(path / name, 0o400)

    def _env(self, pod: Pod, container: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                     "/usr/bin", "/bin"]),
            "HOME": "/tmp",
            "HOSTNAME": pod.name,
            **self.environ,
            **extra,
        }
        for variable in container.get("env", []):
            if "value" in variable:
                value = expand(variable["value"], env)
            else:
                source = variable["valueFrom"]
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    value = self.config_maps[ref["name"]][ref["key"]]
                elif "fieldRef" in source:
                    value = {"status.podIP": pod.ip, "status.hostIP": pod.ip,
                             "metadata.name": pod.name,
                             "metadata.namespace": self.namespace}[
                        source["fieldRef"]["fieldPath"]]  # fmt: skip
                elif "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    value = self.secrets[ref["name"]][ref["key"]].decode()
                else:
                    raise ValueError(f"{pod.name}: an env source this stand-in lacks: {source}")
            env[variable["name"]] = value
        return env

    def _container_argv(self, pod: Pod, container: dict[str, Any],
                        env: dict[str, str]) -> list[str]:  # fmt: skip
        command = container.get("command")
        args = container.get("args", [])
        if command is None:
            command = self.entrypoint
        argv = [expand(word, env) for word in (*command, *args)]
        if argv and argv[0] == "twistd":  # the image's twistd: the test environment's
            argv[0] = str(Path(sys.executable).parent / "twistd")
        return argv

    def _run(self, pod: Pod, container: dict[str, Any], extra: dict[str, str]) -> None:
        env = self._env(pod, container, extra)
        argv = self._container_argv(pod, container, env)
        pod.argv[container["name"]] = argv
        output = Output(pod.name, container["name"])
        pod.outputs[container["name"]] = output
        wrapper = self._container(pod, container, argv)
        pod.processes[container["name"]] = reactor.spawnProcess(
            output, wrapper[0], wrapper, env=env, path="/")

    def _container(self, pod: Pod, container: dict[str, Any], argv: list[str],
                   tag: str = "") -> list[str]:  # fmt: skip
        """The command that runs `argv` in a container of the pod (module docstring)."""
        dirs = self._volume_dirs(pod)
        where = self.work / "pods" / pod.name / f"{container['name']}{tag}"
        for part in ("root", "etc-upper", "etc-work"):
            (where / part).mkdir(parents=True, exist_ok=True)
        mounts = where / "mounts"
        mounts.write_text("".join(f"{dirs[m['name']]} {m['mountPath']}\n"
                                  for m in container.get("volumeMounts", [])))  # fmt: skip
        script = self.work / "container.sh"
        if not script.exists():
            script.write_text(CONTAINER)
        workdir = container.get("workingDir")
        inner = argv if workdir is None else ["/bin/sh", "-c", f'cd {shlex.quote(workdir)} '
                                              f'&& exec "$@"', "sh", *argv]  # fmt: skip
        chroot = shutil.which("chroot", path="/usr/sbin:/sbin:/usr/bin:/bin") or "chroot"
        return [shutil.which("unshare") or "unshare", "-Urmu", "/bin/sh",
                str(script), chroot, str(where / "root"), str(where / "etc-upper"),
                str(where / "etc-work"), str(self.hosts_file), pod.name, str(mounts), *inner]

    # -- readiness -----------------------------------------------------------

    async def _probe_forever(self) -> None:
        while self._probing:
            changed = False
            for pod in list(self.pods):
                if pod.gone:
                    continue
                ready = await self.probe(pod)
                if ready != pod.ready:
                    pod.ready = ready
                    changed = True
            if changed:
                self.write_hosts()
            await deferLater(reactor, 0.2, lambda: None)

    async def probe(self, pod: Pod) -> bool:
        from tests.server.test_ops import http_get

        for container in pod.spec["containers"]:
            probe = container.get("readinessProbe")
            if probe is None:
                continue
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if "httpGet" in probe:
                port = probe["httpGet"]["port"]
                port = ports.get(port, port)
                try:
                    code, _ = await http_get(f"http://{pod.ip}:{port}{probe['httpGet']['path']}")
                except Exception:
                    return False
                if code != 200:
                    return False
            elif "tcpSocket" in probe:
                port = probe["tcpSocket"]["port"]
                if not await tcp_open(pod.ip, ports.get(port, port)):
                    return False
            # An exec probe runs until the pod is first ready, then is taken as passing:
            # each run is a container of its own, too costly to repeat on a shared machine.
            elif "exec" in probe and not pod.ready and not await self._exec(
                    pod, container, probe["exec"]["command"]):  # fmt: skip
                return False
        return True

    async def _exec(self, pod: Pod, container: dict[str, Any], command: list[str]) -> bool:
        env = self._env(pod, container, {})
        argv = self._container(pod, container, command, tag="-probe")
        output = Output(pod.name, "probe")
        reactor.spawnProcess(output, argv[0], argv, env=env, path="/")
        return await output.ended == 0

    # -- what happens to pods ------------------------------------------------

    def kill(self, pod: Pod) -> Deferred[Any]:
        """The pod's node is lost: its processes die at once, its addresses leave DNS."""
        pod.gone = True
        self.write_hosts()
        pod.signal("KILL")
        return pod.ended()

    def terminate(self, pod: Pod) -> Deferred[Any]:
        """The pod is deleted: out of its Services' records, then SIGTERM (the grace
        period is longer than any test)."""
        pod.gone = True
        self.write_hosts()
        pod.signal("TERM")
        return pod.ended()

    def replace(self, pod: Pod) -> Pod:
        """The workload's controller makes a new pod for one gone: a Deployment's or Fleet's
        with a new name and address, a StatefulSet's with the same name (its ordinal)."""
        kind, name = pod.owner
        template = next(t for k, n, _r, t in self.workloads() if (k, n) == pod.owner)
        if kind == "StatefulSet":
            return self.start_pod(kind, name, template, index=int(pod.name.rpartition("-")[2]))
        return self.start_pod(kind, name, template)

    async def stop(self) -> None:
        self._probing = False
        if self._probe_loop is not None:
            await self._probe_loop
        for pod in self.pods:
            pod.signal("KILL")
            await pod.ended()
            # Kept for a test that timed out (no assertion showed the pods' output).
            (self.work / "pods" / pod.name / "output.log").write_text(pod.text())
            if pod.sdk is not None:
                pod.sdk.close_watches()
                await pod.sdk_port.stopListening()

    def pod_of(self, kind: str, name: str, index: int = 0) -> Pod:
        return [p for p in self.pods if p.owner == (kind, name) and not p.gone][index]

    def live(self, kind: str, name: str) -> list[Pod]:
        return [p for p in self.pods if p.owner == (kind, name) and not p.gone]

    async def pods_until(self, what: Callable[[], bool], timeout: float, why: str) -> None:
        """Wait until `what()` holds, failing at once (with the pods' output) if a
        container exited meanwhile."""

        def held() -> bool:
            if what():
                return True
            exited = [f"{p.name}/{o.name}" for p in self.pods if not p.gone
                      for o in p.outputs.values() if o.ended.called]  # fmt: skip
            if exited:
                raise AssertionError(f"{why}: {', '.join(exited)} exited\n" + "\n".join(
                    p.text() for p in self.pods))  # fmt: skip
            return False

        await until(held, lambda: f"{why}\n" + "\n".join(p.text() for p in self.pods),
                    timeout, every=0.1)  # fmt: skip


def own_network(
    method: Callable[[TestCase], Coroutine[Any, Any, None]],
) -> Callable[[TestCase], Coroutine[Any, Any, None]]:
    """A test method whose pods, and the test's own clients, have a network of their own.

    The pods listen on the manifests' ports (7350, 7380, 7390, UDP 7400-...) at their
    pod addresses; in the machine's network stack anything on those ports of 0.0.0.0
    (a developer's `twistd -n vinom`, another run) would stop them. So the test runs
    again in a child trial in new user and network namespaces (`unshare -Urn`, no
    privilege needed), whose loopback is up and holds nothing else: its pods, its
    players, Chromium and the Agones SDK stand-ins all live there, and the machine's
    ports are out of reach both ways. The test passes when the child's run of it does,
    and fails with its output when not."""

    @functools.wraps(method)
    async def in_own_network(case: TestCase) -> None:
        if os.environ.get(OWN_NETWORK) == case.id():
            loopback_up()
            await method(case)
            return
        await rerun_in_own_network(case)

    return in_own_network


async def rerun_in_own_network(case: TestCase) -> None:
    """`case`'s test, run by a child trial in new user and network namespaces."""
    work = Path(case.mktemp()).resolve()
    work.mkdir(parents=True)
    # The parent's import path (the installed build first, as here), then the checkout for
    # the tests (sys.path's '' was the directory the parent started in).
    path = dict.fromkeys([*(p for p in sys.path if p), str(CHECKOUT)])
    env = {**os.environ, OWN_NETWORK: case.id(), "PYTHONPATH": os.pathsep.join(path)}
    argv = [shutil.which("unshare") or "unshare", "-Urn", sys.executable, "-m",
            "twisted.trial", f"--temp-directory={work / '_trial_temp'}", case.id()]  # fmt: skip
    output = Output("trial", case.id())
    reactor.spawnProcess(output, argv[0], argv, env=env, path=str(work))
    code = await output.ended
    if code != 0 or "PASSED" not in output.text:
        raise AssertionError(f"{case.id()} in a network of its own (unshare -Urn): exit "
                             f"{code} (each pod's output: {work}/**/pods/*/output.log)\n"
                             f"{output.text}")  # fmt: skip


def loopback_up() -> None:
    """Bring up `lo` (a new network namespace's is down): 127.0.0.0/8 is then local."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    layout = "16sh22x"  # struct ifreq: the interface's name, then ifr_flags
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _name, flags = struct.unpack(layout, fcntl.ioctl(
            s, siocgifflags, struct.pack(layout, b"lo", 0)))  # fmt: skip
        fcntl.ioctl(s, siocsifflags, struct.pack(layout, b"lo", flags | iff_up))


async def tcp_open(host: str, port: int) -> bool:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    try:
        protocol = await connectProtocol(TCP4ClientEndpoint(reactor, host, port, timeout=1),
                                         Protocol())  # fmt: skip
    except Exception:
        return False
    protocol.transport.loseConnection()  # type: ignore[union-attr]
    return True


def random_secret(n: int = 32) -> bytes:
    return os.urandom(n)


def password() -> bytes:
    import secrets

    return "".join(secrets.choice(string.ascii_letters) for _ in range(24)).encode()

