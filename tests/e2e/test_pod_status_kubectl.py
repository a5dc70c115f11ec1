"""What a kubectl user reads about a pod's containers, compared with upstream:
`kubectl get pods` (READY, STATUS, RESTARTS as printPod computes them), the
conditions `kubectl describe` lists, init containers in order, sidecars (init
containers with `restartPolicy: Always`), and the downward API's pod IP."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.e2e


def apply(cluster, ns: str, manifest: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def pod(name: str, containers: list[dict], init: list[dict] | None = None, **spec) -> dict:
    s: dict = {"containers": containers, "terminationGracePeriodSeconds": 1, **spec}
    if init:
        s["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": s}


def sh(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": "demo:v1", "command": ["sh", "-c", script], **extra}


def row(cluster, ns: str, name: str) -> list[str]:
    """NAME READY STATUS RESTARTS AGE of `kubectl get pod`, RESTARTS kept in one cell."""
    line = cluster.kubectl("get", "pod", name, "-n", ns, "--no-headers").stdout.strip()
    cells = line.split()
    if len(cells) > 5:  # "1 (3s ago)"
        cells = [*cells[:3], " ".join(cells[3:-1]), cells[-1]]
    return cells


def conditions(cluster, ns: str, name: str) -> dict[str, dict]:
    p = cluster.kjson("get", "pod", name, "-n", ns)
    return {c["type"]: c for c in p["status"].get("conditions") or []}


def test_restarts_column_counts_a_failing_init_container(cluster, namespace):
    """printPod sums the init containers' restarts while the pod initialises:
    upstream shows `Init:CrashLoopBackOff   1 (2s ago)`, not 0."""
    apply(cluster, namespace, pod("init-fails", [sh("app", "sleep 600")], init=[sh("setup", "exit 2")]))

    def restarted():
        # The first restart is immediate, so `Init:0/1  1 (0s ago)` (the restarted
        # container running) passes by before the second failure shows.
        cells = row(cluster, namespace, "init-fails")
        failed = cells[2] in ("Init:CrashLoopBackOff", "Init:Error")
        return cells if cells[3].startswith("1 (") and failed else None

    cells = cluster.wait_for(restarted, timeout=20, what="init container restarted once")
    assert cells[1] == "0/1"
    assert cells[2] in ("Init:CrashLoopBackOff", "Init:Error"), cells
    assert cells[3].endswith("ago)")
    st = cluster.kjson("get", "pod", "init-fails", "-n", namespace)["status"]
    init = st["initContainerStatuses"][0]
    assert init["lastState"]["terminated"]["exitCode"] == 2 and init["lastState"]["terminated"]["reason"] == "Error"
    assert st["phase"] == "Pending"
    cond = conditions(cluster, namespace, "init-fails")["Initialized"]
    assert cond["status"] == "False" and cond["message"] == "containers with incomplete status: [setup]"


def test_pod_ip_is_in_the_environment_of_the_first_container(cluster, namespace):
    """fieldRef status.podIP / status.hostIP: the kubelet fills them from the sandbox
    and the node before the pod's status is ever written."""
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
           {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]
    apply(cluster, namespace, pod("ip-env", [sh("app", 'echo "ip=$POD_IP ips=$POD_IPS host=$HOST_IP"; sleep 600',
                                               env=env)]))

    def logged():
        out = cluster.kubectl("logs", "ip-env", "-n", namespace, check=False).stdout
        return out if out.startswith("ip=") else None

    out = cluster.wait_for(logged, timeout=20, what="the container's output").strip()
    st = cluster.kjson("get", "pod", "ip-env", "-n", namespace)["status"]
    assert out == f"ip={st['podIP']} ips={st['podIP']} host={st['hostIP']}"
    assert st["podIP"]


def test_init_containers_wait_as_pod_initializing(cluster, namespace):
    """Before an init container exists (here: its volume cannot be mounted) upstream's
    default waiting reason is PodInitializing, so kubectl shows `Init:0/1`, not
    `Init:ContainerCreating`."""
    vol = [{"name": "cfg", "configMap": {"name": "not-there-yet"}}]
    mount = [{"name": "cfg", "mountPath": "/etc/cfg"}]
    apply(cluster, namespace, pod("init-waits", [sh("app", "sleep 600")],
                                  init=[sh("setup", "true", volumeMounts=mount)], volumes=vol))
    cluster.wait_for(lambda: any(e["reason"] == "FailedMount" for e in cluster.kjson(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=init-waits")["items"]),
        timeout=20, what="FailedMount")
    cluster.wait_for(lambda: row(cluster, namespace, "init-waits")[1:3] == ["0/1", "Init:0/1"], timeout=5,
                     what="0/1 Init:0/1")
    st = cluster.kjson("get", "pod", "init-waits", "-n", namespace)["status"]
    assert st["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    # once the ConfigMap exists the init container runs, then the app
    cluster.kubectl("create", "configmap", "not-there-yet", "-n", namespace, "--from-literal=a=1")
    cluster.wait_for(lambda: row(cluster, namespace, "init-waits")[1:3] == ["1/1", "Running"], timeout=30,
                     what="Running after the ConfigMap appeared")


def test_sidecar_starts_before_the_next_init_container_and_counts_as_a_container(cluster, namespace):
    """Upstream (1.29+): a sidecar starts, then the next init container runs, then the
    containers; READY counts the sidecar (`2/2`); Initialized waits for it."""
    side = sh("proxy", "echo proxy up; sleep 600", restartPolicy="Always")
    apply(cluster, namespace, pod("with-sidecar", [sh("app", "sleep 600")],
                                  init=[sh("first", "sleep 1"), side, sh("second", "sleep 1")]))
    cluster.wait_for(lambda: row(cluster, namespace, "with-sidecar")[1:3] == ["2/2", "Running"], timeout=12,
                     what="2/2 Running")
    st = cluster.kjson("get", "pod", "with-sidecar", "-n", namespace)["status"]
    init = {s["name"]: s for s in st["initContainerStatuses"]}
    assert "running" in init["proxy"]["state"] and init["proxy"]["started"] and init["proxy"]["ready"]
    assert init["first"]["state"]["terminated"]["reason"] == "Completed"
    assert init["second"]["state"]["terminated"]["reason"] == "Completed"
    # in order: first finished before the proxy started, the proxy started before second
    assert init["first"]["state"]["terminated"]["finishedAt"] <= init["proxy"]["state"]["running"]["startedAt"]
    assert init["proxy"]["state"]["running"]["startedAt"] <= init["second"]["state"]["terminated"]["startedAt"]
    assert all(c["status"] == "True" for c in conditions(cluster, namespace, "with-sidecar").values())
    assert cluster.kubectl("logs", "with-sidecar", "-c", "proxy", "-n", namespace).stdout == "proxy up\n"


def test_a_job_like_pod_with_a_sidecar_completes(cluster, namespace):
    """restartPolicy Never: once the container is done the kubelet stops the sidecar
    and the pod Succeeds (`0/2 Completed`); a crashing sidecar is restarted meanwhile."""
    apply(cluster, namespace, pod("job-sidecar", [sh("work", "sleep 3; echo done")],
                                  init=[sh("helper", "sleep 600", restartPolicy="Always")], restartPolicy="Never"))
    cluster.wait_for(lambda: row(cluster, namespace, "job-sidecar")[1:3] == ["0/2", "Completed"], timeout=12,
                     what="0/2 Completed")
    st = cluster.kjson("get", "pod", "job-sidecar", "-n", namespace)["status"]
    assert st["phase"] == "Succeeded"
    assert "terminated" in st["initContainerStatuses"][0]["state"]


def events(cluster, ns: str, name: str, reason: str) -> list[dict]:
    return [e for e in cluster.kjson("get", "events", "-n", ns, "--field-selector",
                                     f"involvedObject.name={name}")["items"] if e["reason"] == reason]


def test_failed_post_start_hook_and_exec_probe_timeout_read_as_upstream(cluster, namespace):
    """The kubelet quotes with Go's %q: the hook's output `"oops\\n"` (escaped, on one
    line in `kubectl describe`), the timed-out probe command `"sleep 5"`."""
    hook = {"postStart": {"exec": {"command": ["sh", "-c", "echo oops; exit 1"]}}}
    apply(cluster, namespace, pod("hook-fails", [sh("app", "sleep 600", lifecycle=hook)]))
    probe = {"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 1, "periodSeconds": 2, "failureThreshold": 100}
    apply(cluster, namespace, pod("probe-slow", [sh("app", "sleep 600", livenessProbe=probe)]))

    ev = cluster.wait_for(lambda: events(cluster, namespace, "hook-fails", "FailedPostStartHook"), timeout=20,
                          what="FailedPostStartHook")[0]
    uid = cluster.kjson("get", "pod", "hook-fails", "-n", namespace)["metadata"]["uid"]
    assert ev["type"] == "Warning" and ev["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert ev["message"] == (f'Exec lifecycle hook ([sh -c echo oops; exit 1]) for Container "app" in Pod '
                             f'"hook-fails_{namespace}({uid})" failed - error: command \'sh -c echo oops; exit 1\' '
                             f'exited with 1: , message: "oops\\n"')
    kill = cluster.wait_for(lambda: events(cluster, namespace, "hook-fails", "Killing"), timeout=10,
                            what="Killing")[0]
    assert kill["message"] == "FailedPostStartHook"

    ev = cluster.wait_for(lambda: events(cluster, namespace, "probe-slow", "Unhealthy"), timeout=20,
                          what="Unhealthy")[0]
    assert ev["message"] == 'Liveness probe failed: command "sleep 5" timed out'

    # an HTTP hook's failure has no output part (1.32's handlers.go)
    http_hook = {"postStart": {"httpGet": {"path": "/started", "port": 1}}}
    apply(cluster, namespace, pod("http-hook", [sh("app", "sleep 600", lifecycle=http_hook)]))
    ev = cluster.wait_for(lambda: events(cluster, namespace, "http-hook", "FailedPostStartHook"), timeout=20,
                          what="FailedPostStartHook (http)")[0]
    uid = cluster.kjson("get", "pod", "http-hook", "-n", namespace)["metadata"]["uid"]
    ip = cluster.kjson("get", "pod", "http-hook", "-n", namespace)["status"]["podIP"]
    assert ev["message"] == (f'HTTP lifecycle hook (/started) for Container "app" in Pod "http-hook_{namespace}({uid})" '
                             f'failed - error: Get "http://{ip}:1/started": dial tcp {ip}:1: connect: connection refused')


def test_finished_pods_read_completed_and_error(cluster, namespace):
    """restartPolicy Never: `0/1 Completed` (Succeeded) and `0/1 Error` (Failed, exit
    code kept); OnFailure restarts the failing one with back-off. A finished pod's
    sandbox is gone upstream, so PodReadyToStartContainers turns False."""
    apply(cluster, namespace, pod("ok-once", [sh("app", "echo hi")], restartPolicy="Never"))
    apply(cluster, namespace, pod("bad-once", [sh("app", "exit 3")], restartPolicy="Never"))
    apply(cluster, namespace, pod("bad-again", [sh("app", "exit 3")], restartPolicy="OnFailure"))
    cluster.wait_for(lambda: row(cluster, namespace, "ok-once")[1:4] == ["0/1", "Completed", "0"], timeout=20,
                     what="ok-once Completed")
    cluster.wait_for(lambda: row(cluster, namespace, "bad-once")[1:4] == ["0/1", "Error", "0"], timeout=20,
                     what="bad-once Error")
    cluster.wait_for(lambda: (c := row(cluster, namespace, "bad-again"))[2] == "CrashLoopBackOff"
                     and c[3].startswith("1 ("), timeout=20, what="bad-again CrashLoopBackOff")

    ok = cluster.kjson("get", "pod", "ok-once", "-n", namespace)["status"]
    assert ok["phase"] == "Succeeded"
    term = ok["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("Completed", 0)
    conds = conditions(cluster, namespace, "ok-once")
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert (conds["Initialized"]["status"], conds["Initialized"].get("reason")) == ("True", "PodCompleted")
    assert (conds["Ready"]["status"], conds["Ready"].get("reason")) == ("False", "PodCompleted")

    bad = cluster.kjson("get", "pod", "bad-once", "-n", namespace)["status"]
    assert bad["phase"] == "Failed"
    assert bad["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert conditions(cluster, namespace, "bad-once")["Ready"].get("reason") == "PodFailed"

    again = cluster.kjson("get", "pod", "bad-again", "-n", namespace)["status"]
    cs = again["containerStatuses"][0]
    assert again["phase"] == "Running"
    assert cs["lastState"]["terminated"]["exitCode"] == 3 and cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["state"]["waiting"]["message"].startswith("back-off 10s restarting failed container=app pod=bad-again_")
    backoff = cluster.wait_for(lambda: events(cluster, namespace, "bad-again", "BackOff"), timeout=10,
                               what="BackOff")[0]
    assert backoff["message"].startswith("Back-off restarting failed container app in pod bad-again_")


def test_a_crash_loop_reads_error_then_crash_loop_back_off_in_a_watch(cluster, namespace):
    """`kubectl get pods -w` upstream: Running, Error, Running 1, Error 1,
    CrashLoopBackOff 1: the kubelet writes what it found (the exit) before it restarts."""
    from tests.conftest import KUBECTL

    apply(cluster, namespace, pod("crashy", [sh("app", "sleep 2; exit 3")]))
    w = subprocess.Popen([KUBECTL, "get", "pod", "crashy", "-n", namespace, "-w", "--no-headers"],
                         env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        cluster.wait_for(lambda: row(cluster, namespace, "crashy")[2] == "CrashLoopBackOff", timeout=20,
                         what="CrashLoopBackOff")
    finally:
        w.terminate()
        out, _ = w.communicate(timeout=10)
    seen = [line.split()[2] for line in out.splitlines() if line.strip()]
    first_crash = seen.index("CrashLoopBackOff")
    assert seen[:first_crash].count("Error") == 2, seen


def test_termination_message_from_the_file_or_the_log(cluster, namespace):
    """"Determine the Reason for Pod Failure": what the program writes to
    /dev/termination-log is `state.terminated.message`; with
    FallbackToLogsOnError a failed container's log tail stands in for it.
    (Absolute paths need the agent's mount namespaces, i.e. root.)"""
    import os

    if os.geteuid() != 0:
        pytest.skip("absolute terminationMessagePath needs mount namespaces (root)")
    apply(cluster, namespace, pod("term-file", [sh("app", "echo Sleep expired > /dev/termination-log")],
                                  restartPolicy="Never"))
    apply(cluster, namespace, pod("term-logs", [sh("app", "echo line one; echo boom >&2; exit 4",
                                                    terminationMessagePolicy="FallbackToLogsOnError")],
                                  restartPolicy="Never"))
    apply(cluster, namespace, pod("term-own-path", [sh("app", "echo custom > /tmp/why; exit 1",
                                                        terminationMessagePath="/tmp/why")], restartPolicy="Never"))

    def message(name: str) -> str | None:
        cs = cluster.kjson("get", "pod", name, "-n", namespace)["status"].get("containerStatuses") or []
        term = cs[0]["state"].get("terminated") if cs else None
        return term.get("message", "") if term else None

    assert cluster.wait_for(lambda: message("term-file"), timeout=20, what="term-file message") == "Sleep expired\n"
    assert cluster.wait_for(lambda: message("term-logs"), timeout=20, what="term-logs message") == "line one\nboom\n"
    assert cluster.wait_for(lambda: message("term-own-path"), timeout=20, what="term-own-path message") == "custom\n"
    out = cluster.kubectl("get", "pod", "term-file", "-n", namespace, "-o",
                          "go-template={{range .status.containerStatuses}}{{.state.terminated.message}}{{end}}").stdout
    assert out == "Sleep expired\n"


def test_bad_input_waits_with_upstream_reasons_and_disturbs_nothing(cluster, namespace):
    """Issue 4's "Bad input": a missing ConfigMap (CreateContainerConfigError and
    upstream's event), a missing Secret key, a command that does not exist (StartError,
    exit code 128, then CrashLoopBackOff), an image the node does not have
    (ErrImagePull/ImagePullBackOff); a good pod beside them runs, and the first one
    starts once its ConfigMap appears."""
    cm_env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k"}}}]
    key_env = [{"name": "Y", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey"}}}]
    cluster.kubectl("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=user=u")
    apply(cluster, namespace, pod("no-cm", [sh("app", "echo X=$X; sleep 600", env=cm_env)]))
    apply(cluster, namespace, pod("no-key", [sh("app", "sleep 600", env=key_env)]))
    apply(cluster, namespace, pod("bad-cmd", [{"name": "app", "image": "demo:v1", "command": ["no-such-program"]}]))
    apply(cluster, namespace, pod("no-image", [{"name": "app", "image": "nginx:1.27"}]))
    apply(cluster, namespace, pod("good", [sh("app", "sleep 600")]))

    cluster.wait_for(lambda: row(cluster, namespace, "good")[1:3] == ["1/1", "Running"], timeout=20, what="good")
    cluster.wait_for(lambda: row(cluster, namespace, "no-cm")[2] == "CreateContainerConfigError", timeout=20,
                     what="no-cm CreateContainerConfigError")
    assert any(e["message"] == 'Error: configmap "later" not found' and e["type"] == "Warning"
               for e in events(cluster, namespace, "no-cm", "Failed"))
    cluster.wait_for(lambda: row(cluster, namespace, "no-key")[2] == "CreateContainerConfigError", timeout=20,
                     what="no-key CreateContainerConfigError")
    assert any(e["message"] == f"Error: couldn't find key nokey in Secret {namespace}/creds"
               for e in events(cluster, namespace, "no-key", "Failed"))
    cluster.wait_for(lambda: row(cluster, namespace, "no-image")[2] == "ImagePullBackOff", timeout=20,
                     what="no-image ImagePullBackOff")
    assert any(e["message"] == "Error: ErrImagePull" for e in events(cluster, namespace, "no-image", "Failed"))
    assert any(e["message"] == 'Back-off pulling image "nginx:1.27"'
               for e in events(cluster, namespace, "no-image", "BackOff"))

    def start_error():
        cs = cluster.kjson("get", "pod", "bad-cmd", "-n", namespace)["status"]["containerStatuses"][0]
        t = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated")
        return t if t and t["reason"] == "StartError" else None

    t = cluster.wait_for(start_error, timeout=20, what="StartError")
    assert t["exitCode"] == 128 and 'exec: "no-such-program": executable file not found in $PATH' in t["message"]
    assert t["startedAt"] == "1970-01-01T00:00:00Z"  # never started, as containerd reports it
    cluster.wait_for(lambda: row(cluster, namespace, "bad-cmd")[2] in ("CrashLoopBackOff", "StartError",
                                                                         "RunContainerError"), timeout=20,
                     what="bad-cmd status")

    cluster.kubectl("create", "configmap", "later", "-n", namespace, "--from-literal=k=v")
    cluster.wait_for(lambda: row(cluster, namespace, "no-cm")[1:3] == ["1/1", "Running"], timeout=30,
                     what="no-cm Running once the ConfigMap exists")
    assert cluster.wait_for(lambda: cluster.kubectl("logs", "no-cm", "-n", namespace).stdout, timeout=10,
                            what="no-cm logs") == "X=v\n"
    assert row(cluster, namespace, "good")[1:4] == ["1/1", "Running", "0"]


def test_env_from_with_prefix_escapes_and_relaxed_names(cluster, namespace):
    """envFrom with and without a prefix (1.32 keeps a key such as `1st`: any printable
    ASCII name but "=" is valid), `$(VAR)` expansion and `$$` escaping in args, an
    optional reference to a missing ConfigMap leaving the variable unset."""
    cluster.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=1st=one",
                    "--from-literal=mode=fast")
    show = ("import os, sys, time\n"
            "for k in sorted(os.environ):\n"
            "    if k.startswith(('CFG_', '1st', 'mode', 'GREETING', 'MAYBE')): print(f'{k}={os.environ[k]}')\n"
            "print(sys.argv[1], flush=True)\n"
            "time.sleep(600)")
    c = {"name": "app", "image": "demo:v1", "command": ["python3", "-c", show], "args": ["$$(MODE) -> $(MODE)"],
         "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"configMapRef": {"name": "settings"}}],
         "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                 {"name": "GREETING", "value": "mode is $(MODE), literally $$(MODE)"},
                 {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k",
                                                                     "optional": True}}}]}
    apply(cluster, namespace, pod("env-from", [c]))
    out = cluster.wait_for(lambda: cluster.kubectl("logs", "env-from", "-n", namespace, check=False).stdout,
                           timeout=20, what="env-from output")
    assert out.splitlines() == ["1st=one", "CFG_1st=one", "CFG_mode=fast", "GREETING=mode is fast, literally $(MODE)",
                                "mode=fast", "$(MODE) -> fast"]


def test_kubectl_logs_flags(cluster, namespace):
    """`kubectl logs` as the tutorials use it: -c, --previous, --tail, --timestamps,
    --since, --all-containers/--prefix, -l, -f ending with the container, and the
    errors upstream gives."""
    import re

    a = sh("a", "for i in 1 2 3 4 5; do echo a-$i; done; sleep 1; exit 1")
    b = sh("b", "echo b-1; echo b-err >&2; sleep 600")
    p = pod("talker", [a, b])
    p["metadata"]["labels"] = {"app": "talk"}
    apply(cluster, namespace, p)

    def restarted():
        cs = {s["name"]: s for s in cluster.kjson("get", "pod", "talker", "-n", namespace)["status"]
              .get("containerStatuses") or []}
        return cs.get("a", {}).get("restartCount", 0) >= 1

    cluster.wait_for(restarted, timeout=30, what="container a restarted")

    def logs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl("logs", "-n", namespace, *args, check=check)

    assert logs("talker", "-c", "a", "--previous").stdout == "a-1\na-2\na-3\na-4\na-5\n"
    assert logs("talker", "-c", "a", "-p", "--tail=2").stdout == "a-4\na-5\n"
    stamped = logs("talker", "-c", "b", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["b-1", "b-err"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line.split(" ", 1)[0]) for line in stamped)
    assert logs("talker", "-c", "b", "--since=1h").stdout == "b-1\nb-err\n"
    default = logs("talker")
    assert 'Defaulted container "a" out of: a, b' in default.stderr
    both = logs("talker", "--all-containers", "--prefix", "--tail=1").stdout.splitlines()
    assert "[pod/talker/b] b-err" in both and any(line.startswith("[pod/talker/a] a-") for line in both)
    assert logs("-l", "app=talk", "-c", "b", "--prefix").stdout == "[pod/talker/b] b-1\n[pod/talker/b] b-err\n"
    # -f follows the running instance and returns when it exits
    followed = cluster.kubectl("logs", "-n", namespace, "talker", "-c", "a", "-f", timeout=30).stdout
    assert followed.startswith("a-1\n")
    err = logs("talker", "-c", "b", "--previous", check=False)
    assert err.returncode != 0
    assert 'previous terminated container "b" in pod "talker" not found' in err.stderr


def test_a_shorter_grace_period_or_a_force_delete_cuts_the_wait(cluster, namespace):
    """A pod stopping with a long grace period (its program ignores SIGTERM) is stopped
    sooner when deleted again with `--grace-period=3`, or force-deleted: the
    kubelet's grace period only ever decreases (at least 2 s for a container)."""
    import time

    import psutil

    def stubborn(name: str) -> dict:
        marker = f"stubborn-{name}-{namespace}"
        return pod(name, [sh("app", f"trap 'echo TERM' TERM; while true; do sleep 0.2; done # {marker}")],
                   terminationGracePeriodSeconds=60)

    def alive(name: str) -> bool:
        marker = f"stubborn-{name}-{namespace}"
        return any(marker in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))

    for name in ("shorter", "forced"):
        apply(cluster, namespace, stubborn(name))
    for name in ("shorter", "forced"):
        cluster.wait_for(lambda n=name: row(cluster, namespace, n)[1:3] == ["1/1", "Running"], timeout=20,
                         what=f"{name} running")
        cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false")
    time.sleep(1)
    assert row(cluster, namespace, "shorter")[2] == "Terminating" and alive("shorter") and alive("forced")
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "shorter", "-n", namespace, "--grace-period=3", "--wait=false")
    cluster.kubectl("delete", "pod", "forced", "-n", namespace, "--grace-period=0", "--force")
    cluster.wait_for(lambda: not alive("forced"), timeout=10, what="the force-deleted pod's process gone")
    gone = cluster.wait_for(lambda: cluster.kubectl("get", "pod", "shorter", "-n", namespace, check=False)
                            .returncode != 0, timeout=15, what="shorter deleted")
    assert gone and time.monotonic() - t0 < 8 and not alive("shorter")


def test_readiness_gate_holds_the_pod_unready_until_its_condition_is_true(cluster, namespace):
    """Pod readiness gates: READINESS GATES `0/1` and Ready False
    (ReadinessGatesNotReady) until something sets the condition True in the status."""
    apply(cluster, namespace, pod("gated", [sh("app", "sleep 600")],
                                  readinessGates=[{"conditionType": "www.example.com/feature-1"}]))
    cluster.wait_for(lambda: row(cluster, namespace, "gated")[2] == "Running", timeout=20, what="Running")
    wide = cluster.kubectl("get", "pod", "gated", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert wide[1] == "1/1" and wide[-1] == "0/1"
    ready = conditions(cluster, namespace, "gated")["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    cond = {"type": "www.example.com/feature-1", "status": "True", "lastProbeTime": None}
    cluster.kubectl("patch", "pod", "gated", "-n", namespace, "--subresource=status", "--type=json", "-p",
                    json.dumps([{"op": "add", "path": "/status/conditions/-", "value": cond}]))
    cluster.wait_for(lambda: conditions(cluster, namespace, "gated")["Ready"]["status"] == "True", timeout=15,
                     what="Ready once the gate is True")
    wide = cluster.kubectl("get", "pod", "gated", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert wide[-1] == "1/1"


def test_an_exec_probe_that_cannot_start_errored(cluster, namespace):
    """An exec probe whose command does not exist is the runtime's error, which the
    kubelet reports as `... probe errored and resulted in unknown state: ...` (and
    counts as a failure: the container stays unready)."""
    probe = {"exec": {"command": ["no-such-binary"]}, "periodSeconds": 1}
    apply(cluster, namespace, pod("probe-missing", [sh("app", "sleep 600", readinessProbe=probe)]))
    ev = cluster.wait_for(lambda: events(cluster, namespace, "probe-missing", "Unhealthy"), timeout=20,
                          what="Unhealthy")[0]
    assert ev["message"].startswith("Readiness probe errored and resulted in unknown state: ")
    assert ev["message"].endswith('exec: "no-such-binary": executable file not found in $PATH')
    assert row(cluster, namespace, "probe-missing")[1:3] == ["0/1", "Running"]


def test_container_statuses_list_their_volume_mounts(cluster, namespace):
    """1.31+ (RecursiveReadOnlyMounts on): `kubectl get pod -o yaml` lists each
    container's mounts in its status; the token volume is read-only, not recursively."""
    mounts = [{"name": "scratch", "mountPath": "/scratch"}]
    apply(cluster, namespace, pod("mounts", [sh("app", "sleep 600", volumeMounts=mounts)],
                                  volumes=[{"name": "scratch", "emptyDir": {}}]))
    cluster.wait_for(lambda: row(cluster, namespace, "mounts")[2] == "Running", timeout=20, what="Running")
    got = cluster.kjson("get", "pod", "mounts", "-n", namespace)["status"]["containerStatuses"][0]["volumeMounts"]
    assert got[0] == {"name": "scratch", "mountPath": "/scratch"}
    token = got[1]
    assert token["name"].startswith("kube-api-access-") and token["readOnly"] is True
    assert token["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert token["recursiveReadOnly"] == "Disabled"


def test_etc_hosts_is_managed_with_host_aliases(cluster, namespace):
    """"Adding entries to Pod /etc/hosts with HostAliases": the kubelet's managed
    file (localhost, the pod's IP and name, its FQDN with a subdomain, the aliases).
    Absolute paths need the mount namespaces (root)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("/etc/hosts in the container needs mount namespaces (root)")
    aliases = [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
               {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]
    apply(cluster, namespace, pod("hostaliases-pod", [sh("cat-hosts", "cat /etc/hosts; sleep 600")],
                                  hostAliases=aliases))
    apply(cluster, namespace, pod("web-0", [sh("app", "sleep 600")], hostname="web-0", subdomain="nginx"))
    cluster.wait_for(lambda: row(cluster, namespace, "hostaliases-pod")[2] == "Running", timeout=20, what="Running")
    ip = cluster.kjson("get", "pod", "hostaliases-pod", "-n", namespace)["status"]["podIP"]
    out = cluster.wait_for(lambda: cluster.kubectl("logs", "hostaliases-pod", "-n", namespace).stdout, timeout=10,
                           what="the hosts file")
    assert out == ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
                   f"{ip}\thostaliases-pod\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"
                   "10.1.2.3\tfoo.remote\tbar.remote\n")
    cluster.wait_for(lambda: row(cluster, namespace, "web-0")[2] == "Running", timeout=20, what="web-0 Running")
    web_ip = cluster.kjson("get", "pod", "web-0", "-n", namespace)["status"]["podIP"]
    hosts = cluster.kubectl("exec", "web-0", "-n", namespace, "--", "cat", "/etc/hosts").stdout
    assert f"{web_ip}\tweb-0.nginx.{namespace}.svc.cluster.local\tweb-0\n" in hosts
    assert cluster.kubectl("exec", "web-0", "-n", namespace, "--", "getent", "hosts", "web-0").stdout.split()[0] == web_ip


def test_run_as_non_root_refuses_a_root_container(cluster, namespace):
    """verifyRunAsNonRoot: `runAsNonRoot: true` with no runAsUser and an image that
    runs as root, or with runAsUser 0, waits with CreateContainerConfigError and the
    kubelet's message; with a non-zero runAsUser the container starts."""
    apply(cluster, namespace, pod("nonroot-image", [sh("app", "sleep 600",
                                                        securityContext={"runAsNonRoot": True})]))
    apply(cluster, namespace, pod("nonroot-uid0", [sh("app", "sleep 600", securityContext={"runAsUser": 0})],
                                  securityContext={"runAsNonRoot": True}))
    apply(cluster, namespace, pod("nonroot-ok", [sh("app", "sleep 600")],
                                  securityContext={"runAsNonRoot": True, "runAsUser": 1000}))
    for name, why in (("nonroot-image", "container has runAsNonRoot and image will run as root"),
                      ("nonroot-uid0", "container's runAsUser breaks non-root policy")):
        cluster.wait_for(lambda n=name: row(cluster, namespace, n)[2] == "CreateContainerConfigError", timeout=20,
                         what=f"{name} CreateContainerConfigError")
        uid = cluster.kjson("get", "pod", name, "-n", namespace)["metadata"]["uid"]
        msg = f'Error: {why} (pod: "{name}_{namespace}({uid})", container: app)'
        assert any(e["message"] == msg for e in events(cluster, namespace, name, "Failed")), msg
    cluster.wait_for(lambda: row(cluster, namespace, "nonroot-ok")[2] == "Running", timeout=20, what="nonroot-ok")


def test_kubectl_run_interactive_one_shots(cluster, namespace):
    """`kubectl run -i --rm --restart=Never` as tutorials use it: the output of a
    command that ends at once is printed (attached, or from the logs when the
    container was already gone), stdin is fed, the exit code comes back, the pod goes."""
    for i in range(3):
        p = cluster.kubectl("run", f"once-{i}", "-n", namespace, "--image=demo:v1", "--restart=Never", "--rm", "-i",
                            "--", "sh", "-c", "echo quick", timeout=60)
        assert p.stdout.splitlines()[0] == "quick", p
    p = cluster.kubectl("run", "fed", "-n", namespace, "--image=demo:v1", "--restart=Never", "--rm", "-i", "--",
                        "sh", input="echo got $((40 + 2)); exit 3\n", check=False, timeout=60)
    assert p.returncode == 3 and "got 42" in p.stdout, p
    cluster.wait_for(lambda: "fed" not in cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout,
                     timeout=20, what="the pod removed")


def test_active_deadline_fails_the_pod(cluster, namespace):
    """spec.activeDeadlineSeconds (the kubelet's activeDeadlineHandler): once it has
    passed since the pod started, its containers are stopped and the pod is Failed
    with reason DeadlineExceeded, with a DeadlineExceeded event."""
    apply(cluster, namespace, pod("deadline", [sh("app", "sleep 600")], activeDeadlineSeconds=3))
    cluster.wait_for(lambda: row(cluster, namespace, "deadline")[2] == "Running", timeout=20, what="Running")
    st = cluster.wait_for(lambda: (s := cluster.kjson("get", "pod", "deadline", "-n", namespace)["status"])
                          .get("phase") == "Failed" and s, timeout=15, what="Failed")
    # printPod shows the killed container's reason over the pod's (as upstream): Error
    assert row(cluster, namespace, "deadline")[1:3] in (["0/1", "Error"], ["0/1", "DeadlineExceeded"])
    assert (st["phase"], st["reason"]) == ("Failed", "DeadlineExceeded")
    assert st["message"] == "Pod was active on the node longer than the specified deadline"
    assert "terminated" in st["containerStatuses"][0]["state"]
    ev = events(cluster, namespace, "deadline", "DeadlineExceeded")
    assert ev and ev[0]["message"] == "Pod was active on the node longer than the specified deadline"
