"""The local Airflow stack's environment: what every process it starts is configured with."""

from __future__ import annotations

import pytest

EXTERNAL_DB = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1/x"}


def test_an_external_database_replaces_the_embedded_one(tmp_path):
    from taxiflow.local.stack import DATABASE_COMPONENT, AirflowStack

    stack = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", extra_env=EXTERNAL_DB)
    assert stack.embedded_db is None and DATABASE_COMPONENT not in stack.all_components()
    assert stack.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == EXTERNAL_DB["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_every_process_reaches_the_execution_api_on_the_chosen_port(tmp_path):
    from taxiflow.local.stack import AirflowStack

    env = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", port=18234,
                       extra_env=EXTERNAL_DB).env()
    assert env["AIRFLOW__API__PORT"] == "18234"
    # Airflow's executors send tasks to <[api] base_url>/execution/ (base_executor.get_execution_api_server_url)
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18234"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "h")
    assert env["TAXIFLOW_DATA_DIR"] == str(tmp_path / "d")


def _fake_airflow(tmp_path, outcomes):
    """An ``airflow`` stand-in that answers the n-th call with outcomes[n]: (exit code, output)."""
    import json
    import stat

    script = tmp_path / "fake-airflow"
    state = tmp_path / "calls"
    state.write_text("0")
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, sys\n"
        f"state = pathlib.Path({str(state)!r})\n"
        "n = int(state.read_text()); state.write_text(str(n + 1))\n"
        f"code, text = json.loads({json.dumps(json.dumps(outcomes))})[n]\n"
        "print(text); sys.exit(code)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, state


def test_a_failed_cli_command_raises_with_its_output_once(tmp_path, monkeypatch):
    import pytest

    import taxiflow.local.stack as stack_module
    from taxiflow.local.stack import AirflowStack

    script, calls = _fake_airflow(tmp_path, [[1, "ParamValidationError: Invalid input for param borough"]] * 3)
    monkeypatch.setattr(stack_module, "airflow_executable", lambda: str(script))
    stack = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", extra_env=EXTERNAL_DB)
    (tmp_path / "h").mkdir()
    with pytest.raises(RuntimeError, match="Invalid input for param borough"):
        stack.airflow("dags", "trigger", "borough_report")
    assert calls.read_text() == "1"
    assert stack.airflow("dags", "trigger", "x", check=False).returncode == 1


def test_every_file_holding_a_secret_is_0600_and_ports_are_kept(tmp_path):
    """Passwords, JWT secret, env.sh (database URL) and the database password: owner-only."""
    import json
    import shutil
    import stat
    import tempfile
    from pathlib import Path

    from taxiflow.local.stack import AirflowStack

    root = Path(tempfile.mkdtemp(prefix="taxiflow-home-"))
    root.chmod(0o711)
    try:
        stack = AirflowStack(home=root / "home", project_dir=tmp_path, data_dir=tmp_path / "d")
        stack.prepare_home()
        env_sh = (stack.home / "env.sh").read_text()
        assert "postgresql+psycopg2://airflow:" in env_sh and "@127.0.0.1:" in env_sh
        for path in (stack.passwords_file, stack.home / "jwt_secret", stack.home / "api_secret_key",
                     stack.home / "env.sh", stack.home / "postgres" / "password"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(stack.home.stat().st_mode) & 0o044 == 0  # nobody else may list the home
        ports = stack.ports()
        assert json.loads((stack.home / "taxiflow-ports.json").read_text()) == ports
        again = AirflowStack(home=root / "home", project_dir=tmp_path, data_dir=tmp_path / "d")
        assert again.ports() == ports, "a restarted component must find the same ports"
        env = again.env()
        # one log server on loopback serves task and trigger logs (taxiflow.local.stack.LOG_SERVER_COMPONENT)
        assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == str(ports["log"])
        assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == str(ports["log"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_taken_log_server_port_is_a_clear_error_before_anything_starts(tmp_path):
    import json
    import re
    import socket

    import pytest

    from taxiflow.local.stack import AirflowStack

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        stack = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", extra_env=EXTERNAL_DB)
        kept = stack.home / "taxiflow-ports.json"
        kept.write_text(json.dumps({**stack.ports(), "log": taken}))  # kept from a run when it was free
        with pytest.raises(RuntimeError, match=re.escape(f"port {taken} (log-server; kept in {kept}: delete")):
            stack.start()
        assert stack.supervisord.pid() is None and not stack.status()  # nothing was started


def test_the_scheduler_starts_warm_and_only_the_log_server_serves_logs():
    import sys

    from taxiflow.local.stack import component_command

    env = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8901"}
    assert component_command("scheduler", env) == [
        sys.executable, "-m", "taxiflow.local.warm_start", "scheduler", "--skip-serve-logs"]
    assert component_command("scheduler", {**env, "TAXIFLOW_WARM_START": "0"})[1:] == ["scheduler", "--skip-serve-logs"]
    # Airflow's log server app on loopback instead of one per component on every interface
    assert component_command("triggerer", env)[1:] == ["triggerer", "--skip-serve-logs"]
    assert component_command("dag-processor", env)[1:] == ["dag-processor"]
    server = component_command("log-server", env)
    assert server[server.index("--host") + 1] == "127.0.0.1" and server[server.index("--port") + 1] == "8901"
    assert "airflow.utils.serve_logs.log_server:get_app" in server


def test_the_warm_launcher_runs_airflows_own_command_line_after_importing(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    probe = ("import sys; from taxiflow.local import warm_start as w; "
             "w.WARM_MODULES = ('pandas', 'no_such_module_here'); "
             "sys.argv = ['x', 'version']; w.main(); "
             "print('pandas' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    version, warmed = result.stdout.split()[-2:]
    assert version.startswith("3.3.") and warmed == "True", result.stdout
    assert "not pre-imported no_such_module_here" in result.stderr


def test_a_task_parsing_its_dag_file_in_a_warm_worker_imports_only_taxiflows_own_modules(tmp_path):
    """Each task process parses its DAG file first: in a process forked from the warm launcher (as
    LocalExecutor's workers are, and their tasks from them), that imports taxiflow's modules and the
    DAG file and nothing else (what Airflow resolves lazily, e.g. ``@task``, is in WARM_MODULES)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    dags = Path(__file__).resolve().parents[3] / "dags"
    probe = f"""
import json, os, sys
from pathlib import Path
from taxiflow.local.warm_start import warm_up
warm_up()
import airflow.executors.local_executor, airflow.sdk.execution_time.supervisor
from airflow.dag_processing.dagbag import BundleDagBag
found = {{}}
for path in sorted(Path({str(dags)!r}).glob("*.py")):
    read, write = os.pipe()
    if os.fork() == 0:
        before = set(sys.modules)
        import airflow.sdk.execution_time.task_runner
        bag = BundleDagBag(dag_folder=str(path), bundle_path=path.parent, bundle_name="dags-folder",
                           load_op_links=False)
        new = sorted(m for m in set(sys.modules) - before
                     if not m.startswith(("taxiflow", "unusual_prefix_")))
        os.write(write, json.dumps([len(bag.dags), bag.import_errors, new]).encode())
        os._exit(0)
    os.close(write)
    found[path.name] = json.loads(os.fdopen(read).read())
    os.wait()
print(json.dumps(found))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "TAXIFLOW_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(found) == 6, found
    for name, (dag_count, errors, imported) in found.items():
        assert dag_count == 1 and not errors, (name, errors)
        assert imported == [], f"{name}: a task parsing it still imports {imported}; add them to WARM_MODULES"


def test_a_task_making_an_s3_data_roots_filesystem_in_a_warm_worker_imports_only_taxiflows_own_modules(tmp_path):
    """With ``TAXIFLOW_DATA_DIR=s3://...`` the warm launcher also imports the S3 client stack, so a
    task that makes the data root's filesystem (every task that touches data) imports nothing but
    taxiflow's modules; with a local root it imports none of that stack at all. Neither loads
    boto3 or the Amazon provider's hooks (7 MB in every task process): the filesystem needs neither."""
    import json
    import os
    import subprocess
    import sys

    from taxiflow.config import DATA_DIR_ENV
    from taxiflow.local import warm_start

    assert warm_start.DATA_DIR_ENV == DATA_DIR_ENV  # spelled out there: no taxiflow module is pre-imported
    assert warm_start.warm_modules({DATA_DIR_ENV: str(tmp_path)}) == warm_start.WARM_MODULES
    probe = """
import json, os, sys
from taxiflow.local.warm_start import warm_up
warm_up()
import airflow.executors.local_executor, airflow.sdk.execution_time.supervisor, airflow.sdk.execution_time.task_runner
s3_stack = sorted(m for m in sys.modules if m.split(".")[0] in ("s3fs", "aiobotocore", "boto3"))
before = set(sys.modules)
from taxiflow.data import storage
storage.root().fs  # what the first read, write or listing of a task makes
hooks = "airflow.providers.amazon.aws.hooks"
unused = sorted(m for m in sys.modules if m.split(".")[0] == "boto3" or m.startswith(hooks))
print(json.dumps([s3_stack, sorted(m for m in set(sys.modules) - before if not m.startswith("taxiflow")), unused]))
"""
    connection = {"conn_type": "aws", "login": "key", "password": "secret",
                  "extra": {"endpoint_url": "http://127.0.0.1:9"}}  # nothing is sent: no server needed
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), DATA_DIR_ENV: "s3://bucket/prefix",
           "AIRFLOW_CONN_TAXIFLOW_STORAGE": json.dumps(connection)}
    env.pop("TAXIFLOW_STORAGE_CONN_ID", None)
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    s3_stack, imported, unused = json.loads(result.stdout.strip().splitlines()[-1])
    assert "s3fs" in s3_stack and "aiobotocore.session" in s3_stack
    assert imported == [], f"making an S3 root's filesystem still imports {imported}; add them to S3_WARM_MODULES"
    assert unused == [], f"boto3 and the provider's hooks are not needed for the filesystem, yet loaded: {unused}"


SUPERVISED = """
import os, sys, time
if os.fork() == 0:  # a child in the program's process group, as a LocalExecutor worker is
    time.sleep(600)
    os._exit(0)
print("started", os.getpid(), flush=True)
time.sleep(600)
"""


def test_supervisord_restarts_a_killed_program_ends_what_it_left_and_stop_leaves_nothing(tmp_path):
    """The generated config on a real supervisord: a program killed with SIGKILL is started again
    (and the one configured to restart with it), the child it left behind (as a dead scheduler
    leaves its workers) is ended by the listener, and a shutdown stops the ``airflow`` group before
    the database and leaves no process of the session."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    from taxiflow.local.leftovers import pid_alive, session_processes
    from taxiflow.local.supervisor import Program, Supervisord, render_config

    (tmp_path / "logs").mkdir()
    script = tmp_path / "program.py"
    script.write_text(SUPERVISED)
    programs = [Program(name, [sys.executable, str(script)], tmp_path) for name in ("postgres", "second")]
    sup = Supervisord(tmp_path)
    sup.config.write_text(render_config(tmp_path, tmp_path / "logs", programs, airflow=["second"],
                                        restart_with_database=["second"]))
    sup.start({**os.environ})
    sid = sup.pid()
    assert sup.processes()["postgres"]["statename"] == "STOPPED"  # a program starts when asked, then stays up
    sup.start_programs(["postgres", "second"])

    def running() -> dict[str, int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = sup.processes()
            if len(info) == 2 and all(i["statename"] == "RUNNING" for i in info.values()):
                return {name: i["pid"] for name, i in info.items()}
            time.sleep(0.2)
        raise AssertionError(f"not running: {sup.processes()}")

    try:
        assert sid is not None and oct(sup.socket.stat().st_mode & 0o777) == "0o700"
        before = running()
        orphans = [c.pid for c in psutil.Process(before["postgres"]).children()]
        assert len(orphans) == 1
        os.kill(before["postgres"], signal.SIGKILL)
        time.sleep(5)  # longer than startsecs
        after = running()
        assert after["postgres"] != before["postgres"], "the killed program was not started again"
        assert after["second"] != before["second"], "the program to restart with the database was not"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(orphans[0]):
            time.sleep(0.2)
        assert not pid_alive(orphans[0]), "the dead program's child was left running"
        assert "started" in (tmp_path / "logs" / "postgres.log").read_text()  # one log per program
        ctl = subprocess.run([str(Path(sys.executable).with_name("supervisorctl")), "-c", str(sup.config), "status"],
                             capture_output=True, text=True, timeout=60)
        assert "airflow:second" in ctl.stdout and "RUNNING" in ctl.stdout, ctl.stdout + ctl.stderr
    finally:
        sup.shutdown()
    assert not session_processes(sid), "processes of the deployment left after stop"
    assert not (tmp_path / "supervisord.pid").exists()
    log = (tmp_path / "logs" / "supervisord.log").read_text()
    assert log.index("stopped: second") < log.index("stopped: postgres"), "Airflow stops before its database"


@pytest.mark.s3
def test_make_run_storage_s3_runs_seaweedfs_under_supervisord_and_make_stop_ends_it(tmp_path):
    """``make run STORAGE=s3``'s object store is one more program: started and waited for before
    Airflow, reused by a second ``make run``, its bucket usable with the env every process gets,
    and ended by ``make stop`` with everything else."""
    import json
    import os
    import subprocess
    import sys

    from taxiflow.local.leftovers import pid_alive, session_processes
    from taxiflow.local.stack import AirflowStack
    from tests.support.seaweedfs import wait_for_bucket

    def stack() -> AirflowStack:
        return AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d",
                            extra_env=EXTERNAL_DB, object_store=True)

    first = stack()
    first.prepare_home()
    failed = first.start_object_store()
    try:
        conn = json.loads(first.env()["AIRFLOW_CONN_TAXIFLOW_STORAGE"])  # what make run's check of the root uses
        wait_for_bucket(conn["extra"]["endpoint_url"], "taxiflow", conn["login"], conn["password"], 120, failed)
        sid, pid = first.supervisord.pid(), first.status()["seaweedfs"]["pid"]
        assert first.status()["seaweedfs"]["state"] in ("STARTING", "RUNNING")  # up before startsecs passed
        env = first.env()
        assert env["TAXIFLOW_DATA_DIR"] == "s3://taxiflow/data" and "AWS_SECRET_ACCESS_KEY" not in env
        again = stack()
        again.start_object_store()
        assert again.status()["seaweedfs"]["pid"] == pid and again.env() == env  # a second make run reuses it
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAXIFLOW_", "AIRFLOW_CONN_"))}
        checked = subprocess.run([sys.executable, "-m", "taxiflow.data.check_storage"], env={**clean, **env},
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0 and "data in s3://taxiflow/data" in checked.stdout, checked.stderr
    finally:
        first.stop()
    assert sid is not None and not pid_alive(pid) and not session_processes(sid)
